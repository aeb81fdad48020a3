# Dates and times in the admin sites as accounts.japan_time writes them on the screens and in e-mails
# (the sites show times in TIME_ZONE, Japan time).
DATE_FORMAT = "j F Y"
DATETIME_FORMAT = "j F Y, H:i"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
