// The `listeners` section: where the proxy accepts clients, each optionally with TLS.
#include "config/loader.hpp"

namespace bedrock_meter::config {
namespace {

constexpr std::array<std::string_view, 3> listener_keys = {"address", "port", "tls"};
constexpr std::array<std::string_view, 2> tls_keys = {"cert_file", "key_file"};

std::optional<tls_files> load_tls(const load_context& ctx, const map_entry& e,
                                  const std::string& path) {
  if (e.value.IsNull()) {
    ctx.diag().error(e.mark(), path,
                     "'tls' is empty; give cert_file and key_file, or remove 'tls' for plain HTTP");
    return std::nullopt;
  }
  const map_reader s(ctx.diag(), e.value, path, tls_keys, e.mark());
  if (!s.is_map()) return std::nullopt;
  tls_files files;
  for (const auto& [key, out] :
       {std::pair{"cert_file", &files.cert_file}, std::pair{"key_file", &files.key_file}}) {
    if (std::string name; s.read_string(key, name, text_rule::required)) {
      *out = ctx.readable_file(*s.get(key), s.path_of(key), name);
    }
  }
  return files;
}

/// One listener; `seen` holds the address:port of those before it.
void load_listener(load_context& ctx, const map_reader& s, first_seen& seen,
                   std::vector<listener_config>& out) {
  ctx.marks().listeners.push_back(s.mark());
  listener_config l;
  if (s.read_string("address", l.address, text_rule::optional) && !is_ip_literal(l.address)) {
    s.error(*s.get("address"), "'" + l.address + "' is not an IP address; use e.g. 127.0.0.1, " +
                                   "0.0.0.0 or :: (IPv6 without brackets)");
  }
  const map_entry* port = s.get("port");
  const bool port_ok = port == nullptr || s.read_port("port", l.port);
  if (const map_entry* t = s.get("tls")) l.tls = load_tls(ctx, *t, s.path_of("tls"));
  out.push_back(l);

  // Port 0 binds a different free port each time, so two of them do not collide.
  if (!port_ok || l.port == 0) return;
  const std::string key = l.address + ":" + std::to_string(l.port);
  const YAML::Mark mark = port != nullptr ? port->mark() : s.mark();
  if (const auto line = seen.earlier_line(key, mark)) {
    ctx.diag().error(mark, s.path(),
                     "duplicate listener " + key + " (already defined on line " +
                         std::to_string(*line) + "); give each listener its own address:port");
  }
}

}  // namespace

void load_listeners(load_context& ctx, const map_reader& top, std::vector<listener_config>& out) {
  const map_entry* e = top.get("listeners");
  if (e == nullptr || e->value.IsNull()) {
    ctx.diag().error(
        e != nullptr ? e->mark() : top.mark(), "listeners",
        "no listeners; add at least one, e.g. 'listeners: [{address: 127.0.0.1, port: 8080}]'");
    return;
  }
  if (e->value.IsSequence() && e->value.size() == 0) {
    top.error(*e, "no listeners; add at least one, e.g. '- {address: 127.0.0.1, port: 8080}'");
    return;
  }
  first_seen seen;
  top.for_each_map("listeners", listener_keys, "listeners",
                   [&](const map_reader& s) { load_listener(ctx, s, seen, out); });
}

}  // namespace bedrock_meter::config
