# Dates and times in the admin sites as accounts.japan_time writes them on the screens and in e-mails
# (the sites show times in TIME_ZONE, Japan time).
DATE_FORMAT = "Y年n月j日"
DATETIME_FORMAT = "Y年n月j日 H:i（日本時間）"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
