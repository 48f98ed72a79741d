"""`gw web`: the dashboard on localhost, for a person without Open OnDemand."""

from __future__ import annotations

import click


@click.command("web")
@click.option("--port", type=click.IntRange(0, 65535), default=0,
              help="Port on 127.0.0.1 (default: a free one).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the address as JSON (url, port, token) instead of a line.")
def web_cmd(port: int, as_json: bool) -> None:
    """Serve the dashboard (the web platform's pages: images, algorithms, datasets,
    notebooks, training jobs, templates, models) on 127.0.0.1 until interrupted.

    Like a notebook, it is protected by a random token: open the address it prints
    (with the token) and nothing is served without it. Reach it from your laptop with
    the `ssh -N -L PORT:127.0.0.1:PORT LOGIN-NODE` it prints. Under Open OnDemand use
    the gw_dashboard app of `gw ood install` instead.
    """
    import json
    import socket

    from werkzeug.serving import make_server

    from gateway.common.errors import InvalidInput
    from gateway.web.app import create_app
    from gateway.web.security import new_access_token

    token = new_access_token()
    app = create_app(access_token=token)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
    except OSError as exc:
        listener.close()
        raise InvalidInput(f"cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})") from exc
    port = listener.getsockname()[1]
    server = make_server("127.0.0.1", port, app, threaded=True, fd=listener.fileno())
    url = f"http://127.0.0.1:{port}/?token={token}"
    if as_json:
        click.echo(json.dumps({"url": url, "port": port, "token": token}), nl=True)
    else:
        click.echo(f"gw web: serving the dashboard at {url}")
        click.echo(f"from another machine: ssh -N -L {port}:127.0.0.1:{port} "
                   f"{socket.getfqdn()}, then open that address; Ctrl-C stops it")
    import sys

    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
