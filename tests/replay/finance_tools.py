"""Implementations of the finance example's tools, for runs that produce real logs."""

from __future__ import annotations

from typing import Any


def lookup_invoice(invoice_id: str) -> dict[str, Any]:
    return {"id": invoice_id, "status": "approved"}


def pay(invoice_id: str, amount_cents: int, currency: str) -> dict[str, Any]:
    return {"paid": invoice_id, "amount_cents": amount_cents}


def refund(invoice_id: str, amount_cents: int) -> dict[str, Any]:
    return {"refunded": invoice_id}


TOOLS = {"lookup_invoice": lookup_invoice, "pay": pay, "refund": refund}
