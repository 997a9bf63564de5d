"""The baseline for bench/run.py: the cheapest possible Flask app under the same gunicorn.

    gunicorn -w 4 -b 127.0.0.1:PORT --pythonpath bench bare:app

A faka page's req/s divided by this app's req/s is the page's "ratio": how much of the
server's raw request-handling capacity the page leaves after doing its own work.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/bare")
def bare():
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
