from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import audit
from accounts.models import AuditEntry, Contract, User

DEMO_CONTRACT = ("1000001", "デモ商事株式会社")
# Fixed, printed demo passwords: demo data exists only on a developer's machine.
DEMO_IDS = [
    ("bank-operator", None, "operator@bank.example", "Operator-demo-2026"),
    ("demo-admin", User.Role.ADMINISTRATOR, "admin@demo-shoji.example", "Admin-demo-2026"),
    ("demo-user1", User.Role.USER, "user1@demo-shoji.example", "User1-demo-2026"),
    ("demo-user2", User.Role.USER, "user2@demo-shoji.example", "User2-demo-2026"),
]


class Command(BaseCommand):
    help = "Create the demo contract (one administrator ID, two user IDs) and an operator, once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="allow outside debug mode")

    def handle(self, *args, force: bool, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates IDs with published passwords; refusing outside debug mode.")
        with transaction.atomic():
            contract, created = Contract.objects.get_or_create(number=DEMO_CONTRACT[0],
                                                               defaults={"name": DEMO_CONTRACT[1]})
            if not created:
                self.stdout.write(f"The demo contract {contract} already exists; nothing changed.")
            for login_id, role, email, password in DEMO_IDS:
                if created:
                    if role is None:
                        user = User.objects.create_superuser(login_id, email, password)
                    else:
                        user = User.objects.create_user(login_id, email, password, contract=contract, role=role)
                    audit.record(AuditEntry.Action.ID_CREATED, subject=user, via="seed_demo")
        self.stdout.write(f"Demo contract {contract}:")
        for login_id, role, _email, password in DEMO_IDS:
            label = User.Role(role).label if role else "bank operator (/operator/)"
            self.stdout.write(f"  {login_id:<14} {label:<28} password: {password}")
