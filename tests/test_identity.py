"""Who may read a port: only products of the mesh, by the rules of the port's visibility; how the reader was
established goes to the access log with every decision."""

import pytest

from platform_resources import access_log
from platform_resources.access import PRINCIPAL, AccessDenied, Reader, check_read_access, open_port
from platform_resources.registry import load_registry

RESTRICTED = "crm.customers.customer_contacts"


@pytest.mark.parametrize("reader", ["crm.does_not_exist", "crm", "crm.x.y", "crm.", ""])
def test_a_reader_that_is_no_product_of_the_mesh_is_refused(fresh_home, reader):
    registry = load_registry()
    for port_id in (RESTRICTED, "sales.orders.orders"):  # public ports too: a misspelt reader is a mistake to show
        with pytest.raises(AccessDenied, match="is not a product of the mesh"):
            check_read_access(registry, port_id, reader)


def test_a_restricted_port_needs_an_approved_request_inside_its_own_domain_too(fresh_home):
    registry = load_registry()
    with pytest.raises(AccessDenied, match="returned_items is restricted; finance.pricing_summary has no approved"):
        check_read_access(registry, "finance.returned_items.returned_items", "finance.pricing_summary")
    check_read_access(registry, "finance.returned_items.returned_items", "finance.returned_items")  # its producer


def test_an_internal_port_is_readable_by_the_products_of_its_domain_only(fresh_home):
    registry = load_registry()
    manifest, port = registry.port("finance.pricing_summary.pricing_summary")
    port.visibility = "internal"
    check_read_access(registry, "finance.pricing_summary.pricing_summary", "finance.top_supplier")
    with pytest.raises(AccessDenied, match="internal to domain 'finance'"):
        check_read_access(registry, "finance.pricing_summary.pricing_summary", "marketing.customer_distribution")
    with pytest.raises(AccessDenied, match="internal to domain 'finance'"):
        check_read_access(registry, "finance.pricing_summary.pricing_summary", None)


def test_a_configured_principal_is_who_reads_and_cannot_be_overridden(fresh_home, monkeypatch):
    monkeypatch.setenv(PRINCIPAL, "marketing.customer_distribution")
    assert Reader.claimed(None) == Reader("marketing.customer_distribution", f"configured principal ({PRINCIPAL})")
    with pytest.raises(AccessDenied, match="--as finance.returned_items is not yours to claim"):
        Reader.claimed("finance.returned_items")
    monkeypatch.delenv(PRINCIPAL)
    assert Reader.claimed("finance.returned_items").established == "claimed with --as, not verified"


def test_the_access_log_says_how_the_reader_was_established(fresh_home):
    registry = load_registry()
    with pytest.raises(AccessDenied):
        open_port(registry, RESTRICTED, Reader.claimed("finance.pricing_summary"))
    [entry] = access_log.entries(port_id=RESTRICTED)
    assert not entry.allowed and entry.consumer == "finance.pricing_summary"
    assert "[reader: claimed with --as, not verified]" in entry.reason
