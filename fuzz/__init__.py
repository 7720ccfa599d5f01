"""Property-based fuzzing of the running API with schemathesis (`bash .ci/fuzz`)."""
