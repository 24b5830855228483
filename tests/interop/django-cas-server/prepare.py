"""Creates the database and registers Guichet as a CAS service (its callback URLs on the
test host), releasing the test user's attributes, with single logout on.

    GUICHET_CAS_DB=/tmp/x.sqlite3 GUICHET_SLO_CALLBACK=http://127.0.0.1:PORT/... python prepare.py
"""
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "casproject.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

from cas_server.models import ReplaceAttributName, ServicePattern  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)
pattern, _ = ServicePattern.objects.get_or_create(
    name="guichet",
    defaults={
        "pos": 1,
        "pattern": r"^http://app\.test:\d+/\.guichet/callback/[a-z0-9_-]+$",
        "single_log_out": True,
        # The test host name only resolves in the test's HTTP client: logout requests go to
        # the gateway's loopback address instead.
        "single_log_out_callback": os.environ.get("GUICHET_SLO_CALLBACK", ""),
    },
)
for name in ("email", "displayName", "alias"):
    ReplaceAttributName.objects.get_or_create(name=name, replace="", service_pattern=pattern)
print("prepared")
