"""The configuration file and the certificate store beside it, as every settings page reaches
them: the real path, the document, the lock around a read-modify-write, blocking work in a
thread. One place, so the views never import each other."""
import asyncio
import os

from aiohttp import web

from webui.context import ctx_of, render


def ikecore_config():
    from ikecore import config     # the daemon's validator; imported late so the pages that
    return config                  # do not edit settings never need it


def certstore():
    from webui import certstore as module   # imports cryptography: late, so start-up stays
    return module                             # quick (TCG)


def config_path(request):
    # Through symlinks: the atomic rename must happen beside the real file (e.g. /etc/ikecore ->
    # a writable data partition), never replace the link in a read-only directory.
    return os.path.realpath(ctx_of(request).options.config_path)


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def settings_lock(request):
    return ctx_of(request).settings_lock


async def read_config(request):
    """The document (tomlkit: comments and layout kept for saving; .unwrap() for plain data),
    or an error page when the file cannot be read/parsed."""
    config = ikecore_config()
    try:
        return await in_thread(config.read_document, config_path(request))
    except config.ConfigError as exc:
        raise web.HTTPInternalServerError(
            text=render(request, "error.html", title="Configuration unreadable",
                        message="The configuration cannot be read: %s" % exc).text,
            content_type="text/html")


def store_of(request):
    return certstore().CertStore(os.path.dirname(config_path(request)))


async def inventory(request):
    """Every stored or configured certificate with its facts and the peers using it."""
    doc = (await read_config(request)).unwrap()
    return await in_thread(certstore().inventory, os.path.dirname(config_path(request)), doc)


async def crl_inventory(request):
    """Every stored or configured CRL with its facts and the peers using it."""
    doc = (await read_config(request)).unwrap()
    return await in_thread(certstore().crl_inventory, os.path.dirname(config_path(request)),
                           doc)
