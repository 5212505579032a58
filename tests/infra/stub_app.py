"""A minimal Chalice app with the function names the stack wires, so infra tests do not
depend on the real app's state."""

from chalice import Chalice

app = Chalice(app_name="histolabel")


@app.route("/health")
def health():
    return {"ok": True}


@app.route("/projects/{project}/labels", methods=["GET", "POST"])
def labels(project):
    return {"project": project}


@app.lambda_function(name="projector")
def projector(event, context):
    return {"batchItemFailures": []}


@app.lambda_function(name="trigger")
def trigger(event, context):
    return {"batchItemFailures": []}
