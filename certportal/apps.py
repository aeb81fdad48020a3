from django.contrib.admin.apps import AdminConfig


class OperatorAdminConfig(AdminConfig):
    """Django's admin, with the bank operators' site (certportal.operator_admin) as admin.site."""

    default_site = "certportal.operator_admin.OperatorAdminSite"
