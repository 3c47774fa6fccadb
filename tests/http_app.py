"""The app tests/test_ext.py and tests/test_ajax.py run besides the demo:
what a request looks like from inside (environ, session, argument types),
and handlers that fail or answer something that is no JSON."""

from twisted.internet import reactor, task as ttask

from hpxd.app import Task

task = Task("httpapp")


@task.on_ext_request(public=["open", "open/deep"])
async def ext(item, path, params, environ):
    if path == "boom":
        raise RuntimeError("secret internals /etc/passwd")
    if path == "odd":
        return {1, 2}  # a set: no JSON
    if path == "slow":
        await ttask.deferLater(reactor, float(params), lambda: None)
        return "slow"
    return {"path": path, "params": params, "door": environ["door"], "token": environ["token"],
            "peer": environ["peer"], "headers": dict(environ["headers"]),
            "user": item.session.user_name, "same": environ is item.environ}


@task.function
def kinds(item, **values):
    """The type of each argument, as the door handed it over."""
    return {name: type(value).__name__ for name, value in values.items()}


@task.function(get=True)
def environ(item):
    return {"door": item.environ["door"], "headers": dict(item.environ["headers"]),
            "peer": item.environ["peer"]}


@task.function
def odd(item):
    return {1, 2}  # a set: no JSON


@task.function
async def slow(item, seconds):
    await ttask.deferLater(reactor, float(seconds), lambda: None)
    return seconds


@task.function
async def remember_later(item, value):
    """Puts value in the session after a real wait: the session is stored
    only when the call ends, after the door's first return."""
    await ttask.deferLater(reactor, 0.01, lambda: None)
    item.session.data["value"] = value
    return value


@task.function
def recall(item):
    return item.session.data.get("value")
