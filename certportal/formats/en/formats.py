# Dates and times in the admin sites as accounts.japan_time writes them on the screens and in e-mails
# (the sites show times in TIME_ZONE, Japan time).
DATE_FORMAT = "j F Y"
DATETIME_FORMAT = r"j F Y, H:i (\J\a\p\a\n \t\i\m\e)"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
