from django.core.management.base import BaseCommand

from certificates.ca import create_ca


class Command(BaseCommand):
    help = "Create the portal's two-tier CA (root and issuing CA) once."

    def handle(self, *args, **options) -> None:
        issuing, created = create_ca()
        if created:
            self.stdout.write(self.style.SUCCESS(f"Created the CA: {issuing.subject}"))
        else:
            self.stdout.write(f"The CA already exists ({issuing.subject}); nothing changed.")
