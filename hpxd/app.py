"""The public API for application authors (see docs/writing-an-app.md).

    from hpxd.app import Task
    task = Task("myapp")

    @task.function
    def add(item, a, b):
        return a + b
"""

from hpxd.core.app import Function, Item, Task
from hpxd.core.context import ItemContext
from hpxd.core.errors import ApplicationError, StaleRecord
from hpxd.core.files import File
from hpxd.core.forms import Form, FormField
from hpxd.core.records import record_hash

__all__ = ["Task", "Item", "Function", "ItemContext", "ApplicationError", "StaleRecord",
           "record_hash", "File",
           "Form", "FormField"]
