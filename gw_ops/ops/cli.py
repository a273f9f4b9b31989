"""The ``gw-ops`` command line.

Commands
--------
``gw-ops up | down | status | demo``
    The local stack (see :mod:`gw_ops.ops.stack`).
``gw-ops gracedb serve``
    The local GraceDB service (see :mod:`gw_ops.local_gracedb`).
``gw-ops broker``
    The VOEvent broker (see :mod:`gw_ops.vtp.broker`).
``gw-ops gcn publish FILE...``
    Push VOEvent files through a broker.
``gw-ops settings``
    Every setting with its environment variable and documentation.

Subcommands import what they need when they run, so ``gw-ops --help`` stays fast.
"""
from __future__ import annotations

import sys

import click

from gw_ops.config import EXECUTORS, get_settings


@click.group()
@click.option("--preset", type=click.Choice(["local", "playground", "production"]), default=None,
              help="Settings preset (default: GW_OPS_PRESET or local).")
@click.pass_context
def main(ctx: click.Context, preset: str | None) -> None:
    """gw-ops: low-latency gravitational-wave alerts on Apache Airflow 3."""
    ctx.obj = {"preset": preset}


def settings_from(ctx: click.Context, **overrides):
    """Settings for a command: preset from the group option, then the command's own options."""
    return get_settings(preset=ctx.obj.get("preset") if ctx.obj else None, **overrides)


@main.command("settings")
@click.pass_context
def settings_cmd(ctx) -> None:
    """Print every setting: its GW_OPS_* variable, the value in force, where that value came
    from (default, preset, GW_OPS_ variable, option, Airflow connection, found state folder)
    and its meaning.

    Redis and GraceDB of a running stack come from its Airflow connections (what its tasks
    and triggers use) unless a GW_OPS_ variable overrides them.
    """
    from gw_ops.config import describe, resolve_settings
    from gw_ops.ops import stack, stack_postgres

    preset = ctx.obj.get("preset") if ctx.obj else None
    settings, sources = resolve_settings(preset=preset)
    connections, note = stack.connection_settings(settings)
    if connections:
        settings, sources = resolve_settings(connections=connections, preset=preset)
    click.echo(describe(settings, sources))
    if note:
        click.echo(note)
    running = stack.running_settings(settings)
    if running.postgres_url != settings.postgres_url and stack_postgres.is_embedded(running):
        # up resolved postgres_url when it started the stack: say what it really uses
        click.echo(f"(the running stack uses its embedded PostgreSQL at "
                   f"{stack_postgres.without_password(running.postgres_url)}, data in "
                   f"{stack_postgres.data_dir(running)}: nothing answered at the configured "
                   "GW_OPS_POSTGRES_URL when it started)")


@main.command()
@click.option("--db", "db_url", default=None, help="Airflow metadata DB URL (default SQLite in the state folder).")
@click.option("--redis", "redis_url", default=None, help="Redis URL (an embedded one starts when none answers).")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="local: LocalExecutor (default); celery: CeleryExecutor on PostgreSQL, one "
                   "Celery worker per queue, Flower (GW_OPS_EXECUTOR).")
@click.pass_context
def up(ctx, db_url, redis_url, executor) -> None:
    """Start the local stack in the background and wait until every part is healthy."""
    from gw_ops.ops import stack
    settings = settings_from(ctx, airflow_db_url=db_url, redis_url=redis_url, executor=executor)
    sys.exit(stack.up(settings))


@main.command()
@click.pass_context
def prepare(ctx) -> None:
    """Prepare a distributed deployment's databases once (compose's airflow-init): migrate
    Airflow's (AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) with pools and connections, create the
    GraceDB database (GW_OPS_GRACEDB_DB_URL) and the pipeline's GraceDB account."""
    from gw_ops.ops.distributed import prepare_deployment
    prepare_deployment(settings_from(ctx), out=click.echo)


@main.command()
@click.pass_context
def down(ctx) -> None:
    """Stop everything `gw-ops up` started and verify nothing is left."""
    from gw_ops.ops import stack
    sys.exit(stack.down(settings_from(ctx)))


@main.command()
@click.argument("component")
@click.pass_context
def restart(ctx, component) -> None:
    """Restart one COMPONENT of the running stack (e.g. triggerer)."""
    from gw_ops.ops import stack
    sys.exit(stack.restart(settings_from(ctx), component))


@main.command()
@click.pass_context
def status(ctx) -> None:
    """One line per component: state, pid, address, health."""
    from gw_ops.ops import stack
    sys.exit(stack.status(settings_from(ctx)))


@main.command("dead-letters")
@click.option("--ack", is_flag=True, help="Mark every dead letter seen (silences the alarm).")
@click.pass_context
def dead_letters_cmd(ctx, ack) -> None:
    """Input rejected at the door: a count per source, the new ones, the last reason."""
    from gw_ops.ops.stack import running_settings
    from gw_ops.transport import dead_letters
    from gw_ops.transport.redis_client import get_redis

    settings = running_settings(settings_from(ctx))
    client = get_redis(settings)
    for line in dead_letters.status_lines(dead_letters.summary(client, settings)):
        click.echo(line)
    if ack:
        for source, count in dead_letters.acknowledge(client, settings).items():
            click.echo(f"acknowledged {count} new dead letter(s) of {source}")


@main.command()
@click.option("--keep-up/--down-after", default=True, help="Leave the stack running afterwards.")
@click.option("--executor", type=click.Choice(EXECUTORS), default=None,
              help="Executor of the stack the demo starts (see `gw-ops up --executor`).")
@click.pass_context
def demo(ctx, keep_up, executor) -> None:
    """Bring the stack up and carry one mock event all the way to a public alert."""
    from gw_ops.ops import demo as demo_module
    sys.exit(demo_module.run(settings_from(ctx, executor=executor), keep_up=keep_up))


@main.group()
def gracedb() -> None:
    """The local GraceDB service."""


@gracedb.command("serve")
@click.option("--db", "db_url", default=None, help="SQLAlchemy URL (default SQLite in the state folder).")
@click.option("--port", type=int, default=None, help="TCP port (default GW_OPS_GRACEDB_PORT).")
@click.option("--files", "files_dir", default=None, help="Folder for uploaded files.")
@click.pass_context
def gracedb_serve(ctx, db_url, port, files_dir) -> None:
    """Run the local GraceDB service in the foreground."""
    from gw_ops.local_gracedb.app import serve
    serve(settings_from(ctx, gracedb_db_url=db_url, gracedb_port=port, gracedb_files_dir=files_dir))


@gracedb.command("adduser")
@click.argument("name")
@click.option("--role", "roles", multiple=True, type=click.Choice(["pipeline", "robot", "advocate"]),
              help="Role of the account (repeatable); none: reads everything, writes log comments.")
@click.pass_context
def gracedb_adduser(ctx, name, roles) -> None:
    """Create (or reset) a local GraceDB account NAME and print its password once.

    Put ``machine <host> login NAME password <password>`` in your ~/.netrc (mode 0600) and
    use ``GraceDb('http://<host>:<port>/api/', force_noauth=True)``.
    """
    from gw_ops.local_gracedb.auth import add_user
    from gw_ops.ops import stack
    settings = stack.running_settings(settings_from(ctx))
    password = add_user(settings, name, roles)
    click.echo(f"GraceDB account {name} ({', '.join(roles) or 'member'}) at {settings.gracedb_api_url}")
    click.echo(f"netrc line: machine {settings.host} login {name} password {password}")


@main.command()
@click.option("--port", type=int, default=None, help="TCP port (default GW_OPS_BROKER_PORT).")
@click.pass_context
def broker(ctx, port) -> None:
    """Run the VOEvent broker (VTP server) in the foreground."""
    from gw_ops.vtp.broker import serve
    serve(settings_from(ctx, broker_port=port))


@main.group()
def gcn() -> None:
    """GCN notices."""


@gcn.command("publish")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--broker", "broker_address", default=None, help="HOST:PORT of the broker (default the local one).")
@click.pass_context
def gcn_publish(ctx, files, broker_address) -> None:
    """Push VOEvent FILES through a broker, as an author (each must be acked)."""
    from gw_ops.vtp.protocol import publish_files
    settings = settings_from(ctx)
    address = broker_address or f"{settings.host}:{settings.broker_port}"
    host, _, port = address.rpartition(":")
    from gw_ops.vtp.protocol import VTPError
    try:
        ivorns = publish_files(list(files), host, int(port))
    except (VTPError, OSError) as exc:
        raise click.ClickException(f"publishing through {address} failed: {exc}") from exc
    for ivorn in ivorns:
        click.echo(f"acked: {ivorn}")


if __name__ == "__main__":
    main()
