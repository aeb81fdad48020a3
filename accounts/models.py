"""Contracts (契約), their administrator IDs (管理者ID) and user IDs (利用者ID), and the audit log."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import connections, models, router
from django.db.models import Q
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .japan_time import japan_time
from .statements import Columns, fetch_one

login_id_validator = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{3,31}$",
    _("A login ID is 4 to 32 letters, digits, dots, hyphens or underscores, starting with a letter or digit."),
)


class Contract(models.Model):
    """A corporate customer's internet-banking contract."""

    number = models.CharField(
        _("contract number"),
        max_length=16,
        unique=True,
        validators=[RegexValidator(r"^[0-9]{6,16}$", _("A contract number is 6 to 16 digits."))],
    )
    name = models.CharField(_("customer name"), max_length=200)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    class Meta:
        verbose_name = _("contract")
        verbose_name_plural = _("contracts")
        ordering = ["number"]

    def __str__(self) -> str:
        return f"{self.number} {self.name}"


class UserManager(BaseUserManager):
    use_in_migrations = True

    def locked_with_contract(self, pk: int) -> User:
        """The ID's row locked for this transaction (SELECT ... FOR UPDATE OF the ID alone), with its contract:
        what an issuance holds. Raises DoesNotExist. The statement is built once per process."""
        db = self._db or router.db_for_write(self.model)
        connection = connections[db]
        sql, user_columns, contract_columns = _locked_with_contract_statement(self.model, db)
        if connection.features.has_select_for_update and not connection.in_atomic_block:
            raise TransactionManagementError("locked_with_contract() locks a row: call it inside a transaction.")
        values = fetch_one(db, sql, [pk])
        if values is None:
            raise self.model.DoesNotExist(f"No ID with the primary key {pk}.")
        user = user_columns.instance(db, values[:user_columns.width])
        contract_values = values[user_columns.width:]
        user.contract = None if contract_values[0] is None else contract_columns.instance(db, contract_values)
        return user

    def create_user(self, login_id: str, email: str, password: str | None = None, **fields) -> User:
        user = self.model(login_id=login_id, email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, login_id: str, email: str, password: str | None = None, **fields) -> User:
        """A bank operator: staff, no contract."""
        fields.update(is_staff=True, is_superuser=True, contract=None, role="")
        return self.create_user(login_id, email, password, **fields)


@functools.cache
def _locked_with_contract_statement(model, db: str) -> tuple[str, Columns, Columns]:
    connection = connections[db]
    contract_model = model._meta.get_field("contract").related_model
    users, contracts = Columns(model, "u", db), Columns(contract_model, "k", db)
    lock = (" FOR UPDATE OF u" if connection.features.has_select_for_update_of
            else " FOR UPDATE" if connection.features.has_select_for_update else "")
    return (
        f"SELECT {users.sql}, {contracts.sql} FROM {users.table} "  # noqa: S608
        f"LEFT OUTER JOIN {contracts.table} ON {contracts[contract_model._meta.pk.column]} "
        f"= {users['contract_id']} WHERE {users[model._meta.pk.column]} = %s{lock}",
        users, contracts,
    )


class User(AbstractBaseUser, PermissionsMixin):
    """One login ID. Customers' IDs belong to a contract; bank operators' do not."""

    class Role(models.TextChoices):
        ADMINISTRATOR = "administrator", _("administrator ID")
        USER = "user", _("user ID")

    class State(models.TextChoices):
        ACTIVE = "active", _("active")
        LOCKED = "locked", _("locked")
        SUSPENDED = "suspended", _("suspended")

    class Language(models.TextChoices):
        JAPANESE = "ja", _("Japanese")
        ENGLISH = "en", _("English")

    login_id = models.CharField(_("login ID"), max_length=32, unique=True, validators=[login_id_validator])
    contract = models.ForeignKey(
        Contract, on_delete=models.PROTECT, null=True, blank=True, related_name="ids", verbose_name=_("contract")
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, blank=True)
    email = models.EmailField(_("registered e-mail address"))
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.JAPANESE)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.ACTIVE)
    failed_password_attempts = models.PositiveSmallIntegerField(_("failed password attempts"), default=0)
    must_change_password = models.BooleanField(_("must change password at next login"), default=False)
    is_staff = models.BooleanField(_("bank operator"), default=False)
    date_joined = models.DateTimeField(_("registered at"), default=timezone.now, editable=False)

    objects = UserManager()

    USERNAME_FIELD = "login_id"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["email"]

    class Meta:
        verbose_name = _("ID")
        verbose_name_plural = _("IDs")
        ordering = ["login_id"]
        constraints = [
            models.CheckConstraint(
                name="customer_ids_have_a_contract_and_role_operators_neither",
                condition=(
                    Q(contract__isnull=True, role="")
                    | Q(contract__isnull=False, role__in=["administrator", "user"], is_staff=False)
                ),
            ),
        ]

    def __str__(self) -> str:
        return self.login_id

    def clean(self) -> None:
        # The check constraint above, in Python: forms that lack one of its fields (the admin's add
        # form and the contract's inline have no is_staff) skip it and would hit the database error.
        super().clean()
        if self.contract_id is None and self.role:
            raise ValidationError(_("An administrator or user ID must belong to a contract."))
        if self.contract_id is not None and not self.role:
            raise ValidationError(_("An ID of a contract is either an administrator ID or a user ID."))
        if self.contract_id is not None and self.is_staff:
            raise ValidationError(_("A bank operator belongs to no contract."))

    @property
    def is_active(self) -> bool:
        """Only an active ID may sign in; locked and suspended ones are refused."""
        return self.state == self.State.ACTIVE

    @property
    def is_operator(self) -> bool:
        return self.is_staff and self.contract_id is None

    @property
    def is_contract_administrator(self) -> bool:
        return self.contract_id is not None and self.role == self.Role.ADMINISTRATOR


class UserID(User):
    """A contract's user IDs (利用者ID), as the contract administrators' site names them."""

    class Meta:
        proxy = True
        verbose_name = _("user ID")
        verbose_name_plural = _("user IDs")


# Every app's audit actions, value -> label, in the order the apps registered them (register_audit_actions).
_AUDIT_ACTIONS: dict[str, str] = {}
# The bank's own business: never about one contract, never shown in a contract's audit log.
_BANK_ONLY_ACTIONS: set[str] = set()


def register_audit_actions(actions: type[models.TextChoices], *, bank_only: Iterable[str] = ()) -> None:
    """Make an app's audit actions known to the audit log; each app calls it from its AppConfig.ready()."""
    _AUDIT_ACTIONS.update(actions.choices)
    _BANK_ONLY_ACTIONS.update(bank_only)


def audit_action_choices() -> list[tuple[str, str]]:
    """AuditEntry.action's choices, read each time they are used. The field's migration names this
    function, not the list, so an app that adds an action migrates only itself."""
    return list(_AUDIT_ACTIONS.items())


class AuditEntry(models.Model):
    """An append-only record of who did what to which ID or certificate.

    Each app owns its actions (accounts: AuditEntry.Action; certificates: CertificateAction;
    notices: NoticeAction) and registers them with register_audit_actions.
    """

    class Action(models.TextChoices):
        LOGIN_SUCCEEDED = "login_succeeded", _("login succeeded")
        LOGIN_FAILED = "login_failed", _("login failed")
        LOGOUT = "logout", _("logout")
        ID_CREATED = "id_created", _("ID created")
        ID_CHANGED = "id_changed", _("ID details changed")
        ID_LOCKED = "id_locked", _("ID locked")
        ID_UNLOCKED = "id_unlocked", _("ID unlocked")
        ID_SUSPENDED = "id_suspended", _("ID suspended")
        ID_RESUMED = "id_resumed", _("ID resumed")
        PASSWORD_CHANGED = "password_changed", _("password changed")
        PASSWORD_RESET = "password_reset", _("password reset")
        IDS_EXPORTED = "ids_exported", _("IDs exported")

    # The bank's own business: never about one contract, never shown in a contract's audit log.
    BANK_ONLY_ACTIONS = frozenset({Action.IDS_EXPORTED})

    at = models.DateTimeField(_("at"), default=timezone.now, db_index=True)
    action = models.CharField(_("action"), max_length=40, choices=audit_action_choices)
    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("by")
    )
    subject = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_entries", verbose_name=_("ID")
    )
    contract = models.ForeignKey(
        Contract, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("contract")
    )
    certificate_serial = models.CharField(_("certificate serial number"), max_length=64, blank=True)
    remote_addr = models.GenericIPAddressField(_("remote address"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{japan_time(self.at)} {self.get_action_display()}"

    @classmethod
    def contract_actions(cls) -> list[tuple[str, str]]:
        """The actions that can concern a contract, as (value, label) choices."""
        return [(value, label) for value, label in audit_action_choices() if value not in _BANK_ONLY_ACTIONS]


class PasswordHistory(models.Model):
    """The hashes of an ID's recent passwords, newest first, so that none is chosen again.

    Written by accounts.passwords.PasswordReuseValidator.password_changed whenever a
    password is set, whatever the path (services, operators' admin, createsuperuser).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="password_history")
    password = models.CharField(_("password hash"), max_length=128)
    set_at = models.DateTimeField(_("set at"), default=timezone.now)

    class Meta:
        verbose_name = _("previous password")
        verbose_name_plural = _("previous passwords")
        ordering = ["-set_at", "-id"]
        indexes = [models.Index(fields=["user", "-set_at"], name="password_history_newest")]

    def __str__(self) -> str:
        return f"{self.user} {japan_time(self.set_at)}"


class AttemptCounter(models.Model):
    """Attempts counted per (scope, key) in fixed time windows: by client address, or by a typed login ID.

    Written only through accounts.throttle, whose compare-and-set UPDATE keeps the count exact
    with any number of server processes; rows of windows long past are deleted as new ones start.
    """

    scope = models.CharField(_("scope"), max_length=32)
    key = models.CharField(_("key"), max_length=64)
    window_start = models.DateTimeField(_("window start"))
    attempts = models.PositiveIntegerField(_("attempts"), default=0)

    class Meta:
        verbose_name = _("attempt counter")
        verbose_name_plural = _("attempt counters")
        constraints = [
            models.UniqueConstraint(fields=["scope", "key", "window_start"], name="one_counter_per_key_and_window"),
        ]
        # Pruning deletes a scope's windows that ended.
        indexes = [models.Index(fields=["scope", "window_start"], name="attempt_counter_window")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key} {japan_time(self.window_start)}: {self.attempts}"


class JobRunQuerySet(models.QuerySet):
    def last_success_of(self, names) -> dict[str, JobRun | None]:
        """The newest recorded run of each job named (None: never ran); one indexed read per job."""
        return {name: self.filter(name=name).order_by("-finished_at", "-id").first() for name in names}


class JobRun(models.Model):
    """A scheduled job (a Celery beat task or its management-command twin) that finished successfully.

    Written by accounts.jobs.recording around each job, so that operators and the monitoring see
    when the daily reminders or the CRL refresh last ran, whichever node or path ran them.
    """

    name = models.CharField(_("job"), max_length=100)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    host = models.CharField(_("host"), max_length=255, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    objects = JobRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("job run")
        verbose_name_plural = _("job runs")
        ordering = ["-finished_at", "-id"]
        indexes = [models.Index(fields=["name", "-finished_at"], name="job_run_newest")]

    def __str__(self) -> str:
        return f"{self.name} {japan_time(self.finished_at)}"
