"""A small support agent, instrumented the way agents in production are.

The OpenAI client is traced by the official GenAI instrumentation
(opentelemetry-instrumentation-openai-v2); the agent run and its tool calls are traced with
opentelemetry-util-genai, as agent frameworks do; the OpenTelemetry SDK exports the spans over
OTLP/HTTP to wherever OTEL_EXPORTER_OTLP_ENDPOINT points. Nothing here knows about reverie.

The model is a local stub of the Chat Completions API: for every question it asks for the
`lookup_order` tool with the order number as the customer wrote it (`A1001`), then answers.
The order service takes digits only, so the tool fails the same way in every conversation:
the recurring mistake a dream should find (a timeout would be transient, not a lesson).

    python agent.py CONVERSATIONS
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from openai import OpenAI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.util.genai.handler import TelemetryHandler


class StubModel(BaseHTTPRequestHandler):
    """Chat Completions: a tool call for a new question, an answer once the tool replied."""

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        messages = request["messages"]
        if messages[-1]["role"] == "tool":
            message = {"role": "assistant", "content": "I could not find that order; could you check the number?"}
            finish = "stop"
        else:
            order = messages[-1]["content"].split()[-1].strip("?")
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [{
                    "id": f"call_{order}",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": json.dumps({"order": order})},
                }],
            }
            finish = "tool_calls"
        body = json.dumps({
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 1764000000, "model": request["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class InvalidOrderId(Exception):
    pass


def lookup_order(order):
    if not order.isdigit():
        raise InvalidOrderId(f"invalid order id {order!r}: the order service takes digits only")
    return {"order": order, "status": "shipped"}


TOOLS = [{
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Find an order by its number",
        "parameters": {"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]},
    },
}]


def converse(client, handler, n):
    with handler.invoke_local_agent(agent_name="support", request_model="stub-model") as agent:
        agent.conversation_id = f"conv-{n}"
        messages = [{"role": "user", "content": f"Hello, where is my order A{n}00{n}?"}]
        reply = client.chat.completions.create(model="stub-model", messages=messages, tools=TOOLS)
        call = reply.choices[0].message.tool_calls[0]
        arguments = json.loads(call.function.arguments)
        try:
            with handler.tool("lookup_order") as tool:
                tool.tool_call_id = call.id
                tool.arguments = arguments
                tool.tool_result = lookup_order(arguments["order"])
                result = json.dumps(tool.tool_result)
        except InvalidOrderId as error:
            result = f"Error: {error}"
        messages.append(reply.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        client.chat.completions.create(model="stub-model", messages=messages, tools=TOOLS)


def main():
    conversations = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    model = ThreadingHTTPServer(("127.0.0.1", 0), StubModel)
    threading.Thread(target=model.serve_forever, daemon=True).start()

    # Resource.create() reads OTEL_SERVICE_NAME; the exporter reads OTEL_EXPORTER_OTLP_ENDPOINT.
    provider = TracerProvider(resource=Resource.create())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    handler = TelemetryHandler(tracer_provider=provider)

    client = OpenAI(base_url=f"http://127.0.0.1:{model.server_address[1]}/v1", api_key="stub", max_retries=0)
    for n in range(1, conversations + 1):
        converse(client, handler, n)
    # Export everything before exiting; a failed export is an error the test must see.
    provider.force_flush()
    provider.shutdown()
    model.shutdown()


if __name__ == "__main__":
    main()
