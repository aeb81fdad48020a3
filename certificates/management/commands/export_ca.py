from django.core.management.base import BaseCommand, CommandError

from certificates.ca import CANotInitialised, chain_pem


class Command(BaseCommand):
    help = "Print the CA chain (issuing CA, then root) in PEM."

    def handle(self, *args, **options) -> None:
        try:
            self.stdout.write(chain_pem(), ending="")
        except CANotInitialised as error:
            raise CommandError(str(error)) from None
