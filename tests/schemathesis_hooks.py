# Loaded by schemathesis (SCHEMATHESIS_HOOKS) in tests/openapi_fuzz.rs: the import's body is
# JSON Lines, which schemathesis has no serializer of its own for; as text, its generated
# strings go out as they are.
import schemathesis

schemathesis.serializer.alias("application/x-ndjson", "text/plain")
