from zto import create_app

app = create_app(startup_warnings=False)  # gunicorn.conf.py says them once, in the master
