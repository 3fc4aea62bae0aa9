"""Evidence that two candidate photos are the same picture: local features
(features), one robust geometric fit and a pixel check (evidence), and the
tier a pair earns, with a reason a person understands (tiers). Runs on the
grey 224x224 network input, so it needs no second decode. Not yet part of
the scan: docs/verification.md says what is left to build.
"""
