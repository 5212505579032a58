"""Jobs started through the API are recorded as events and their status is scoped to the project."""

from histolabel.commands import CreateProject
from tests.unit.helpers import OWNER


def test_started_job_is_recorded_and_its_status_readable(api):
    started = api.request("POST", "/projects/proj/slides/s1/jobs", user="olivia", body={"job": "ingest"})
    assert started.status_code == 202, started.body
    job_id = started.json_body["job_id"]
    state = api.svc.project_state("proj")
    assert state.jobs[job_id]["job"] == "ingest" and state.jobs[job_id]["by"] == "olivia"
    status = api.request("GET", f"/projects/proj/jobs/{job_id}", user="olivia")
    assert status.status_code == 200 and status.json_body["status"] == "RUNNING"


def test_a_job_of_another_project_is_not_found(api):
    api.svc.execute(CreateProject(project_id="other", name="other"), OWNER)
    answer = api.request("GET", "/projects/other/jobs/job-1", user="olivia")
    assert answer.status_code == 404 and answer.json_body["field"] == "job_id"
