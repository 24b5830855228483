"""A minimal Django project serving django-cas-server on loopback for Guichet's interop test.

The database is a SQLite file named by GUICHET_CAS_DB (one per test run). The only account is
django-cas-server's test user (`test` / `test`) with the attributes below.
"""
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "guichet-interop-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cas_server",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "DIRS": [],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

ROOT_URLCONF = "casproject.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("GUICHET_CAS_DB", os.path.join(BASE_DIR, "cas.sqlite3")),
    }
}
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
STATIC_URL = "/static/"

CAS_AUTH_CLASS = "cas_server.auth.TestAuthUser"
CAS_TEST_USER = "test"
CAS_TEST_PASSWORD = "test"
CAS_TEST_ATTRIBUTES = {
    "email": "jeanne.dupont@example.org",
    "displayName": "Jeanne Dupont-Lefèvre",
    "alias": ["jdupont", "jeanne.d"],
}
CAS_NEW_VERSION_HTML_WARNING = False
CAS_NEW_VERSION_EMAIL_WARNING = False
CAS_SHOW_POWERED = False
# Single logout requests to the service, asynchronously: none in flight slows the logout page.
CAS_SLO_TIMEOUT = 5
