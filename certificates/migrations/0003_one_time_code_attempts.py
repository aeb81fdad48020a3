from django.db import migrations, models


class Migration(migrations.Migration):
    """A code's entries are counted whether right or wrong, each claimed by a compare-and-set UPDATE."""

    dependencies = [
        ("certificates", "0002_onetimecode"),
    ]

    operations = [
        migrations.RenameField(model_name="onetimecode", old_name="failed_attempts", new_name="attempts"),
        migrations.AlterField(
            model_name="onetimecode",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0, verbose_name="attempts"),
        ),
    ]
