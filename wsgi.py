from zto import create_app

app = create_app()
