def add_routes(app):
    pass
