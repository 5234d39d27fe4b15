# Seed 003's "Python Client", as the document gives it. Two changes, both marked: the URI and
# the token come from the environment (EVENT_API_URL, EVENT_API_TOKEN) so it can run against
# this example. `extra_headers` is kept: Debian's python3-websockets (10.x) still takes it
# (websockets 14+ renamed it `additional_headers` in its new asyncio client).
#
#   EVENT_API_TOKEN=<token printed by server.ts> python3 -u examples/event-api/client.py
import os  # change: read the URI and token from the environment
import websockets
import asyncio
import json

async def connect_websocket():
    uri = os.environ.get("EVENT_API_URL", "ws://127.0.0.1:8080/v1/ws")  # change: was "wss://api.openframe.io/v1/ws"
    headers = {
        "Authorization": "Bearer " + os.environ.get("EVENT_API_TOKEN", "your_token")  # change: was "Bearer your_token"
    }
    
    async with websockets.connect(uri, extra_headers=headers) as websocket:
        # Subscribe to topics
        await websocket.send(json.dumps({
            "type": "subscribe",
            "topics": ["devices", "alerts"]
        }))
        
        # Handle messages
        while True:
            message = await websocket.recv()
            data = json.loads(message)
            print(f"Received: {data}")

# Run the client
asyncio.get_event_loop().run_until_complete(connect_websocket())
