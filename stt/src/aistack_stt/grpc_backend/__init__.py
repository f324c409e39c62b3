"""gRPC live transcription: whisper-streaming-stt-server's `stt.STTBackend` (stt.proto).

A thin adapter over the live engine: `CreateSession` registers a session's options
(sessions.py, options.py); `StreamingRecognize` runs it as a `LiveSession` (stream.py),
with partials while speech is active and a final per utterance; refusals are status codes
with a reason (errors.py); decode timings go back as trailing metadata (timings.py).
stt_pb2*.py are generated from stt.proto by generate.py and committed.

The public face is `server.GrpcServer`, `server.check_port` and `service.GrpcServices`;
nothing is imported here, so `generate` runs without registering `stt.*` in protobuf's pool.
"""
