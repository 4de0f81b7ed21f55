"""Calls the weather-grpc service with Python's grpcio (gRPC's own implementation, pinned in
requirements.txt) and prints what grpcio reports, as one JSON object:

  {"code": "OK", "details": ..., "trailing_metadata": {...}, "forecasts": [{"date": ...}, ...]}

The request and response messages are encoded and decoded here by hand (the proto has one
empty request and a repeated message of strings and int32s), so nothing but grpcio is needed.
Usage: grpcio_client.py --target 127.0.0.1:PORT [--token TOKEN]
"""

import argparse
import json
import sys

import grpc

METHOD = "/weather.v1.WeatherForecasts/GetForecast"


def varint(data, at):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data):
    """(field number, wire type, value) of a protobuf message."""
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(data, at)
        elif wire == 2:
            length, at = varint(data, at)
            value, at = data[at:at + length], at + length
        else:
            raise ValueError(f"unexpected wire type {wire}")
        yield number, wire, value


def int32(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def forecasts(response):
    out = []
    for number, _, item in fields(response):
        if number != 1:
            continue
        forecast = {}
        for field, _, value in fields(item):
            if field == 1:
                forecast["date"] = value.decode()
            elif field == 2:
                forecast["temperatureC"] = int32(value)
            elif field == 3:
                forecast["temperatureF"] = int32(value)
            elif field == 4:
                forecast["summary"] = value.decode()
        out.append(forecast)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--token")
    args = parser.parse_args()
    metadata = [("authorization", f"Bearer {args.token}")] if args.token else []
    with grpc.insecure_channel(args.target) as channel:
        call = channel.unary_unary(
            METHOD,
            request_serializer=lambda message: message,
            response_deserializer=lambda data: data,
        )
        try:
            response, outcome = call.with_call(b"", metadata=metadata, timeout=20)
            result = {
                "code": outcome.code().name,
                "details": outcome.details(),
                "trailing_metadata": dict(outcome.trailing_metadata() or ()),
                "forecasts": forecasts(response),
            }
        except grpc.RpcError as error:
            result = {
                "code": error.code().name,
                "details": error.details(),
                "trailing_metadata": dict(error.trailing_metadata() or ()),
                "initial_metadata": dict(error.initial_metadata() or ()),
            }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
