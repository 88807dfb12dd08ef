#!/usr/bin/env python3
"""Writes testdata/text-format/spans.jsonl: the protobuf text format of every golden span
(testdata/veneur-golden/stream.bin), as the protobuf project's own Python library prints
it (`text_format.MessageToString`, default options), one JSON string per line, in the
order of the stream. ssf-proto's `text` tests hold its printer to these bytes.

    python3 -m venv /tmp/pb && /tmp/pb/bin/pip install protobuf
    /tmp/pb/bin/python scripts/text-format-vectors.py

The message types are declared here from proto/ssf/sample.proto (no protoc needed).
"""
import json
import pathlib
import struct

import google.protobuf
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

F = descriptor_pb2.FieldDescriptorProto
ROOT = pathlib.Path(__file__).resolve().parent.parent


def field(msg, name, number, ftype, label=F.LABEL_OPTIONAL, type_name=None):
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name


def map_entry(msg, name):
    entry = msg.nested_type.add(name=name)
    entry.options.map_entry = True
    field(entry, "key", 1, F.TYPE_STRING)
    field(entry, "value", 2, F.TYPE_STRING)


def enum(msg, name, values):
    e = msg.enum_type.add(name=name)
    for i, v in enumerate(values):
        e.value.add(name=v, number=i)


fd = descriptor_pb2.FileDescriptorProto(name="ssf/sample.proto", package="ssf", syntax="proto3")
sample = fd.message_type.add(name="SSFSample")
enum(sample, "Metric", ["COUNTER", "GAUGE", "HISTOGRAM", "SET", "STATUS"])
enum(sample, "Status", ["OK", "WARNING", "CRITICAL", "UNKNOWN"])
enum(sample, "Scope", ["DEFAULT", "LOCAL", "GLOBAL"])
map_entry(sample, "TagsEntry")
field(sample, "metric", 1, F.TYPE_ENUM, type_name=".ssf.SSFSample.Metric")
field(sample, "name", 2, F.TYPE_STRING)
field(sample, "value", 3, F.TYPE_FLOAT)
field(sample, "timestamp", 4, F.TYPE_INT64)
field(sample, "message", 5, F.TYPE_STRING)
field(sample, "status", 6, F.TYPE_ENUM, type_name=".ssf.SSFSample.Status")
field(sample, "sample_rate", 7, F.TYPE_FLOAT)
field(sample, "tags", 8, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".ssf.SSFSample.TagsEntry")
field(sample, "unit", 9, F.TYPE_STRING)
field(sample, "scope", 10, F.TYPE_ENUM, type_name=".ssf.SSFSample.Scope")

span = fd.message_type.add(name="SSFSpan")
map_entry(span, "TagsEntry")
field(span, "version", 1, F.TYPE_INT32)
field(span, "trace_id", 2, F.TYPE_INT64)
field(span, "id", 3, F.TYPE_INT64)
field(span, "parent_id", 4, F.TYPE_INT64)
field(span, "start_timestamp", 5, F.TYPE_INT64)
field(span, "end_timestamp", 6, F.TYPE_INT64)
field(span, "error", 7, F.TYPE_BOOL)
field(span, "service", 8, F.TYPE_STRING)
field(span, "metrics", 10, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".ssf.SSFSample")
field(span, "tags", 11, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".ssf.SSFSpan.TagsEntry")
field(span, "indicator", 12, F.TYPE_BOOL)
field(span, "name", 13, F.TYPE_STRING)
field(span, "root_start_timestamp", 14, F.TYPE_INT64)

pool = descriptor_pool.DescriptorPool()
pool.Add(fd)
SSFSpan = message_factory.GetMessageClass(pool.FindMessageTypeByName("ssf.SSFSpan"))

data = (ROOT / "testdata/veneur-golden/stream.bin").read_bytes()
out = []
pos = 0
while pos < len(data):
    version, length = struct.unpack(">BI", data[pos : pos + 5])
    assert version == 0
    body = data[pos + 5 : pos + 5 + length]
    pos += 5 + length
    msg = SSFSpan()
    msg.ParseFromString(body)
    out.append(json.dumps(text_format.MessageToString(msg)))

dest = ROOT / "testdata/text-format/spans.jsonl"
dest.write_text("\n".join(out) + "\n")
print(f"{len(out)} spans, protobuf {google.protobuf.__version__} -> {dest.relative_to(ROOT)}")
