"""A client written the seed's way (the seed document's "client.py", section by section).

It is here to run against the real store, unchanged in spirit from what the seed describes, so
that the store answers what such a client depends on:

1. the frontend's address from the `.env` in the current directory (`host`, `frontend_port`);
2. one `requests.Session` for every request (one reused TCP connection);
3. per iteration: look up a random toy, `GET /product?<toy_name>`; if that answered 200 and the
   order probability beats a random draw, order it, `POST /order` `{"toy", "quantity"}`, and
   remember a successful order's number with the toy and quantity;
4. sleep a second, then read every remembered order back, `GET /orders/<order_number>`, and
   compare `data["Toy name"]` and `data["Quantity"]` with what was ordered, printing the seed's
   message for each mismatch;
5. print the average latencies.

The last line of its output is a JSON summary for the test that runs it
(tests/tests/seed_client.rs); the exit status is 1 if any order was inconsistent.
"""

import argparse
import json
import os
import random
import sys
import time

import requests

TOYS = ["Tux", "Fox", "Whale", "Dolphin", "Python", "Elephant", "Monopoly", "Lego", "Marbles", "Barbie"]


def read_env(path):
    """The `.env` as a dict (the seed reads it with python-dotenv; this is its plain subset)."""
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


def send(request, *args, **kwargs):
    """The seed's error handling: retry a request whose connection failed."""
    for attempt in range(5):
        try:
            return request(*args, **kwargs)
        except requests.exceptions.RequestException:
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prob", type=float, default=0.5, help="probability of an order after a successful lookup")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    random.seed(args.seed)

    env = read_env(os.path.join(os.getcwd(), ".env"))
    base = "http://{}:{}".format(env["host"], env["frontend_port"])
    session = requests.Session()

    orders = {}
    lookup_latency, order_latency = [], []
    lookups_ok = 0
    for _ in range(args.requests):
        toy = random.choice(TOYS)
        start = time.time()
        r = send(session.get, "{}/product?{}".format(base, toy))
        lookup_latency.append(time.time() - start)
        if r.status_code != 200:
            continue
        lookups_ok += 1
        # The seed's draw is written `prob >= random.uniform(0.,8)`; over [0, 1] it is the
        # probability the document describes ("with a given probability order_prob").
        if args.prob >= random.uniform(0.0, 1.0):
            quantity = random.randint(1, 3)
            start = time.time()
            r = send(session.post, "{}/order".format(base), json={"toy": toy, "quantity": quantity})
            order_latency.append(time.time() - start)
            if r.status_code == 200:
                orders[r.json()["data"]["order_number"]] = {"Toy name": toy, "Quantity": quantity}

    time.sleep(1)
    inconsistent = []
    for number, local in orders.items():
        r = send(session.get, "{}/orders/{}".format(base, number))
        data = r.json().get("data", {}) if r.status_code == 200 else {}
        if data.get("Toy name") != local["Toy name"] or data.get("Quantity") != local["Quantity"]:
            print("Local database is inconsistent with the order server database:", number, local, r.text)
            inconsistent.append(number)

    print("Average lookup latency: {:.2f} ms".format(1000 * sum(lookup_latency) / max(1, len(lookup_latency))))
    if order_latency:
        print("Average order latency: {:.2f} ms".format(1000 * sum(order_latency) / len(order_latency)))
    summary = {
        "lookups": len(lookup_latency),
        "lookups_ok": lookups_ok,
        "order_requests": len(order_latency),
        "orders": [{"number": n, "name": o["Toy name"], "quantity": o["Quantity"]} for n, o in orders.items()],
        "inconsistent": inconsistent,
    }
    print(json.dumps(summary))
    sys.exit(1 if inconsistent else 0)


if __name__ == "__main__":
    main()
