"""The pieces of `loopguard demo`: deterministic tools, the agent on FakeBedrock, the live view,
and the cost projection. Examples and tests reuse them."""
