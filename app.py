from approval import create_app

app = create_app()
