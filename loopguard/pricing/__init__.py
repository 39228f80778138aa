"""Prices as data, the cost of a call, and the guard's default pricer."""

from loopguard.errors import UnknownModel
from loopguard.pricing.cost import cost_usd, worst_case_usage
from loopguard.pricing.pricer import PolicyPricer, default_pricer
from loopguard.pricing.spec import LongContextSpec, PriceSpec
from loopguard.pricing.table import (
    Price,
    PriceTable,
    Resolved,
    normalize,
    packaged_table,
)
from loopguard.pricing.usage import usage_from_metadata

__all__ = [
    "LongContextSpec",
    "PolicyPricer",
    "Price",
    "PriceSpec",
    "PriceTable",
    "Resolved",
    "UnknownModel",
    "cost_usd",
    "default_pricer",
    "normalize",
    "packaged_table",
    "usage_from_metadata",
    "worst_case_usage",
]
