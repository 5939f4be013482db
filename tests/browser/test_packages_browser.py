"""Packages in Chromium: download an integration's package, import it back as a new one."""

import orjson
import pytest
from playwright.sync_api import expect

from integrations.models import AccessLevel, Flow, Integration, Role
from tests.factories import FlowFactory, GrantFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_export_then_import_as_new_integration(page, login, screenshot, tmp_path):
    dana = UserFactory(username="dana", role=Role.DEVELOPER)
    orders = IntegrationFactory(name="Orders (production)")
    GrantFactory(integration=orders, user=dana, level=AccessLevel.MANAGE)
    FlowFactory(integration=orders, name="Orders to ERP")
    login("dana")

    page.goto(f"/integrations/{orders.pk}/")
    with page.expect_download() as download:
        page.get_by_test_id("export-package").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(".ilm.json")
    assert orjson.loads(saved.read_bytes())["integration"]["name"] == "Orders (production)"

    # A broken file: the page names the problem and nothing is created.
    broken = tmp_path / "broken.ilm.json"
    broken.write_bytes(b'{"format": "zip"}')
    page.goto("/")
    page.get_by_role("link", name="Import package").click()
    page.set_input_files("#id_file", str(broken))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_test_id("package-error")).to_contain_text("not an ILM package")
    screenshot("package-import-error")
    assert Integration.objects.count() == 1

    page.set_input_files("#id_file", str(saved))
    page.fill("#id_name", "Orders (imported)")
    page.get_by_role("button", name="Import").click()
    expect(page.locator("h1")).to_contain_text("Orders (imported)")
    expect(page.locator("#tab-content")).to_contain_text("Orders to ERP")
    screenshot("package-imported")
    imported = Integration.objects.get(name="Orders (imported)")
    assert imported.lineage_id == orders.lineage_id and imported.cloned_from == orders
    assert Flow.objects.get(integration=imported).lineage_id == (
        Flow.objects.get(integration=orders).lineage_id
    )
