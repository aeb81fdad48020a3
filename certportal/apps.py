from django.contrib.admin.apps import AdminConfig


class OperatorAdminConfig(AdminConfig):
    """Django's admin, whose default site (admin.site, at /operator/) asks for an operator's certificate."""

    default_site = "notices.operator_admin.OperatorAdminSite"
