"""A bare Flask endpoint that parses and echoes JSON: the floor that decisions are compared to."""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/echo")
def echo():
    return jsonify(request.get_json())
