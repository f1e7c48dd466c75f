"""A short burst of real boto3 traffic through the proxy: all five Bedrock Runtime operations,
several model families, two teams (a SigV4 key and a bearer key). Token counts are steered with
the simulator's SIM{...} directive so the report is reproducible."""
import json
import os
import sys

import boto3
from botocore.config import Config

url = sys.argv[1]
cfg = Config(retries={"total_max_attempts": 1})
search = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id="BMAKDEMOSEARCH0001",
                      aws_secret_access_key="demo-search-secret-0001", config=cfg)


def msgs(text):
    return [{"role": "user", "content": [{"text": text}]}]


sonnet = "anthropic.claude-3-5-sonnet-20240620-v1:0"
haiku = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
nova = "amazon.nova-lite-v1:0"
llama = "meta.llama3-1-70b-instruct-v1:0"

calls = 0
for i in range(3):
    search.converse(modelId=sonnet, messages=msgs(f"Summarize doc {i} SIM{{input=1200,output=300,cache_read=800}}"))
    calls += 1
for event in search.converse_stream(modelId=nova, messages=msgs("Stream a haiku SIM{input=40,output=25,events=5}"))["stream"]:
    pass
calls += 1
search.invoke_model(modelId=llama, body=json.dumps({"prompt": "Explain SIM{input=90,output=150}", "max_gen_len": 200}))
calls += 1
body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
                   "messages": [{"role": "user", "content": "Write a limerick SIM{input=60,output=80,cache_write=20}"}]})
for _ in search.invoke_model_with_response_stream(modelId=haiku, body=body)["body"]:
    pass
calls += 1
search.count_tokens(modelId=sonnet, input={"converse": {"messages": msgs("How long is this?")}})
calls += 1

# The support team uses a Bedrock API key (bearer), as boto3 does with AWS_BEARER_TOKEN_BEDROCK.
os.environ["AWS_BEARER_TOKEN_BEDROCK"] = "bm-demo-support-token-0001"
support = boto3.session.Session().client("bedrock-runtime", endpoint_url=url,
                                          region_name="us-east-1", config=cfg)
for i in range(2):
    support.converse(modelId=haiku, messages=msgs(f"Answer ticket {i} SIM{{input=500,output=120}}"))
    calls += 1
print(f"demo: sent {calls} requests through the proxy with boto3 (SigV4 and bearer keys)")
