"""One folder per target. A connector builds requests, parses answers and classifies errors;
pacing, retries and authentication refreshes belong to the engine."""
