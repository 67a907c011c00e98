#!/usr/bin/env python3
"""Ask an OpenAI-compatible server (`slowfast serve`, vLLM, SGLang) about a video, streaming the answer.

Standard library only: it posts the same JSON the OpenAI Python client would send.

    python3 ask_video.py http://127.0.0.1:8080 clip.mp4 "What happens in this video?" --fps 2 --frames 32

The answer goes to standard output as it streams; the usage (tokens, frames, timings) to standard error.
"""
import argparse
import base64
import json
import mimetypes
import sys
import urllib.error
import urllib.request


def post(url, body, api_key):
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    return urllib.request.urlopen(request)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", help="the server's address, e.g. http://127.0.0.1:8080")
    parser.add_argument("video")
    parser.add_argument("question")
    parser.add_argument("--model", help="the model id (default: the server's first)")
    parser.add_argument("--frames", type=int, help="frames to sample (with --fps: the most)")
    parser.add_argument("--fps", type=float, help="sample at this many frames a second")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--api-key")
    args = parser.parse_args()

    base = args.server.rstrip("/") + "/v1"
    model = args.model
    if model is None:
        with urllib.request.urlopen(base + "/models") as response:
            model = json.load(response)["data"][0]["id"]
    mime = mimetypes.guess_type(args.video)[0] or "video/mp4"
    with open(args.video, "rb") as f:
        video = base64.b64encode(f.read()).decode()
    video_url = {"url": f"data:{mime};base64,{video}"}
    body = {
        "model": model,
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": args.question},
            {"type": "video_url", "video_url": video_url}]}],
    }
    if args.frames is not None:
        body["media_io_kwargs"] = {"video": {"num_frames": args.frames}}  # vLLM's name; SGLang: video_url.max_frames
    if args.fps is not None:
        body["mm_processor_kwargs"] = {"fps": args.fps}  # vLLM's name; SGLang: video_url.fps

    try:
        response = post(base + "/chat/completions", body, args.api_key)
    except urllib.error.HTTPError as e:
        error = json.load(e).get("error", {})
        sys.exit(f"error {e.code}: {error.get('message')} (param {error.get('param')})")
    usage = None
    with response:
        for raw in response:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                sys.exit(f"error: {chunk['error'].get('message')}")
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices", []):
                piece = choice.get("delta", {}).get("content")
                if piece:
                    print(piece, end="", flush=True)
    print()
    if usage:
        extension = usage.get("slowfast", {})
        print(f"prompt {usage['prompt_tokens']} tokens ({usage['prompt_tokens_details']['cached_tokens']} cached), "
              f"answer {usage['completion_tokens']} tokens, {extension.get('frames')} frames, "
              f"vision {extension.get('vision_seconds')} s", file=sys.stderr)


if __name__ == "__main__":
    main()
