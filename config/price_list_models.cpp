#include "config/price_list_models.hpp"

#include <array>
#include <map>
#include <utility>

#include "config/rate_table_loader.hpp"
#include "config/yaml_reader.hpp"

namespace bedrock_meter::config {

namespace {

constexpr std::array<std::string_view, 1> top_keys = {"models"};
constexpr std::array<std::string_view, 5> model_keys = {"price_list", "offer", "model", "models",
                                                        "long_context_above"};
constexpr std::array<std::string_view, 2> offers = {"AmazonBedrock",
                                                    "AmazonBedrockFoundationModels"};

class models_loader {
 public:
  explicit models_loader(std::string file) : diag_(std::move(file)) {}

  price_list_models_result run(std::string_view yaml) {
    price_list_models_result r;
    diag_.guard([&] { parse(yaml, r.models); }, "YAML nested too deeply for a model mapping");
    r.errors = diag_.take_errors();
    if (!r.errors.empty()) r.models.clear();
    return r;
  }

 private:
  void parse(std::string_view yaml, std::vector<price_list_model>& out) {
    const YAML::Node root = YAML::Load(std::string(yaml));
    const map_reader top(diag_, root, "", top_keys);
    if (!top.is_map()) return;
    if (top.get("models") == nullptr) {
      top.missing("models");
      return;
    }
    std::map<std::pair<std::string, std::string>, std::string> seen;  // (name, offer) -> where
    top.for_each_map("models", model_keys, "model mappings", [&](const map_reader& s) {
      price_list_model m;
      m.location = diag_.file() + ":" + std::to_string(s.mark().line + 1);
      bool ok = s.read_string("price_list", m.name, text_rule::required);
      if (s.read_string("offer", m.offer, text_rule::non_empty) && !m.offer.empty() &&
          std::find(offers.begin(), offers.end(), m.offer) == offers.end()) {
        s.error(*s.get("offer"), unknown_word("offer", m.offer, offers));
        ok = false;
      }
      ok &= read_models(s, m.models);
      if (s.get("long_context_above") != nullptr) {
        std::uint64_t above = 0;
        ok &= s.read_uint("long_context_above", above, 1, 100'000'000,
                          "use the input-token threshold, e.g. 200000");
        m.long_context_above = above;
      }
      if (!ok) return;
      const auto [it, fresh] = seen.emplace(std::pair(m.name, m.offer), m.location);
      if (!fresh) {
        s.error(*s.get("price_list"), "'" + m.name + "' is mapped twice (first at " + it->second +
                                          "); keep one mapping per name and offer");
        return;
      }
      out.push_back(std::move(m));
    });
  }

  /// `model: ID` or `models: [ID, ...]`, exactly one of them; each a base model id.
  bool read_models(const map_reader& s, std::vector<std::string>& out) {
    const bool one = s.get("model") != nullptr, many = s.get("models") != nullptr;
    if (one == many) {
      diag_.error(s.mark(), s.path(),
                  one ? "give 'model' or 'models', not both"
                      : "missing required key 'model'; add 'model: provider.name-v1:0' here");
      return false;
    }
    bool ok = true;
    const auto check = [&](std::string id, const std::string& path, const YAML::Mark& mark) {
      if (auto problem = base_model_problem(id); !problem.empty()) {
        diag_.error(mark, path, std::move(problem));
        ok = false;
        return;
      }
      out.push_back(std::move(id));
    };
    if (one) {
      std::string id;
      if (!s.read_string("model", id, text_rule::required)) return false;
      check(std::move(id), s.path_of("model"), s.get("model")->mark());
      return ok;
    }
    s.for_each_item("models", "model ids", [&](const YAML::Node& item, const std::string& path) {
      if (const std::string* id = s.item_scalar(item, path, "a model id")) {
        check(*id, path, item.Mark());
      } else {
        ok = false;
      }
    });
    if (ok && out.empty()) {
      s.error(*s.get("models"), "'models' is empty; list at least one model id");
      ok = false;
    }
    return ok;
  }

  diagnostics diag_;
};

}  // namespace

price_list_models_result load_price_list_models_string(std::string_view yaml,
                                                       std::string_view file_name) {
  return models_loader(std::string(file_name)).run(yaml);
}

price_list_models_result load_price_list_models_file(const std::string& path) {
  text_file file = read_text_file(path, "model mapping");
  if (file.error) {
    price_list_models_result r;
    r.errors.push_back(std::move(*file.error));
    return r;
  }
  return models_loader(path).run(file.text);
}

}  // namespace bedrock_meter::config
