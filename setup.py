from setuptools import find_packages, setup

setup(
    name="hpxd",
    version="0.1.0",
    description="A multi-protocol Twisted application server (HappyPanda X TCP RPC and more)",
    python_requires=">=3.11",
    # twisted.plugins is a namespace folder without __init__.py: list it by hand,
    # find_packages() alone would leave the twistd plugin out.
    packages=find_packages(exclude=["tests*", "bench*"]) + ["twisted.plugins"],
    # hpxd/hpxd.toml links to config/hpxd.toml: twistd hpxd --print-config prints it.
    # The console page's files (hpxd/doors/web/console/) are served from the package.
    package_data={"twisted": ["plugins/hpxd_plugin.py"], "hpxd": ["hpxd.toml"],
                  "hpxd.doors.web": ["console/index.html", "console/console.js",
                                     "console/console.css", "forms/hpxd-forms.js",
                                     "forms/hpxd-forms.css"]},
    install_requires=[
        "Twisted[tls]>=24.7",
        "autobahn>=24.4",
        "service-identity>=24.1",
        "txredisapi>=1.6.0",
        "hiredis>=2.0",  # txredisapi's C reply parser when installed: far less CPU per reply
        # Records (hpxd/core/records.py): SQLAlchemy Core builds every statement
        # (dialects, bound parameters, pooling) for SQLite and PostgreSQL alike.
        "SQLAlchemy>=2.0,<3",
        # PostgreSQL's driver, a plain dependency rather than an extra: moving
        # records to a shared server is a config change, with no reinstall on
        # every node. The binary wheel carries its own libpq.
        "psycopg[binary]>=3.1,<4",
        # GET /metrics (hpxd/doors/web/metrics.py): the Prometheus text format
        # and its metric families come from the reference library, not by hand.
        "prometheus_client>=0.17",
        # multipart/form-data bodies (hpxd/doors/web/multipart_body.py: /upload, /ajax,
        # /session): a streaming (push, sans-I/O) parser, so a 64 MiB upload is
        # parsed a piece at a time from its temporary file, never whole in
        # memory as twisted.web's own form parsing would, and a malformed body
        # gets hpxd's JSON error. Pure Python, no dependencies of its own.
        "multipart>=1.2,<3",
        # Form downloads (hpxd/core/downloads.py): thumbnails of images (Pillow),
        # PDFs concatenated (pypdf, pure Python) and records exported as .xlsx
        # (openpyxl, pure Python), each run in a worker thread.
        "Pillow>=10",  # the thumbnail mode: decodes and scales images, guards bombs
        "pypdf>=4",  # the pdf mode: joins PDF files into one
        "openpyxl>=3.1",  # the excel mode: writes a form's records as .xlsx
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-twisted>=1.14", "happypandax-client==1.0.0",
                 "websockets>=12",
                 # the client library of Igor's own integration tests (tests/test_igor_clients.py)
                 "websocket-client>=1.6",
                 # drives Debian's chromium (apt) in the console's browser test
                 "playwright>=1.40",
                 # Jam.py's own browser client, jam/js/jam.js (and its jquery.js), is
                 # the judge of /api: tests/test_jam_browser.py runs it unchanged
                 "jam.py==5.4.136"],
    },
)
