"""The app Igor's own integration tests run against (``igor/test/
server_instance.py`` of cezary986/igor), written for hpxd: an ``echo``
action, and a process ``test_process`` that pushes ``tick``/``tack`` to
every client and ``tick``/``special_for_CLIENT_1`` to the client that
introduced itself as ``CLIENT_1`` (Igor ticks every second; here faster,
so the tests wait less)."""

from hpxd.app import Task

task = Task("igor")


@task.function
def echo(item, data):
    """Igor's echo: the data sent, back as it came."""
    return data


@task.process("test_process", interval=0.1)
async def test_process(ctx):
    await ctx.push("tick", "tack")
    await ctx.push("tick", "special_for_CLIENT_1", client_id="CLIENT_1")
