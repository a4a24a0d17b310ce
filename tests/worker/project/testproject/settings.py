"""A small Scrapy project for the worker tests: its spiders crawl a local HTTP server that
the tests start (never the internet)."""

BOT_NAME = "testproject"
SPIDER_MODULES = ["testproject.spiders"]
NEWSPIDER_MODULE = "testproject.spiders"
ROBOTSTXT_OBEY = False
TELNETCONSOLE_ENABLED = False
# the local server answers at once: no need to be polite, and the tests stay fast
DOWNLOAD_DELAY = 0
CONCURRENT_REQUESTS = 4
LOG_LEVEL = "INFO"
