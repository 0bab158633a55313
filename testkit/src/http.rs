//! HTTP to a [`Serve`]: one request call that records every reply (the secrets tests search all
//! bodies a test saw), and the calls tests make most.

use std::time::{Duration, Instant};

use crate::Serve;

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A response: status, body, and the headers tests look at.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub connection: Option<String>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }

    /// The `error` message of a `{"error"}` body (and asserts the body has that shape).
    pub fn error(&self) -> String {
        let json = self.json();
        let object = json.as_object().unwrap_or_else(|| panic!("not an object: {}", self.body));
        assert_eq!(object.len(), 1, "error bodies have exactly one key: {}", self.body);
        object["error"].as_str().unwrap_or_else(|| panic!("no error string: {}", self.body)).to_owned()
    }
}

impl Serve {
    /// Sends a request; `bearer` becomes `Authorization: Bearer ...`; `body` is sent as JSON.
    pub fn request(&self, method: &str, path: &str, bearer: Option<&str>, body: Option<&str>) -> Reply {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        self.request_with_auth(method, path, auth.as_deref(), body)
    }

    /// Like [`Serve::request`], with a raw `Authorization` header value.
    pub fn request_with_auth(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        self.try_request(method, path, authorization, body).unwrap_or_else(|err| panic!("{method} {path}: {err}"))
    }

    /// Like [`Serve::request_with_auth`], with transport errors (a server that died, a refused
    /// connection) returned rather than panicking.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: Option<&str>,
    ) -> Result<Reply, ureq::Error> {
        let url = self.url(path);
        let result = match method {
            "GET" | "DELETE" => {
                let mut request = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                if let Some(value) = authorization {
                    request = request.header("Authorization", value);
                }
                request.call()
            }
            _ => {
                let mut request = match method {
                    "POST" => self.agent.post(&url),
                    "PUT" => self.agent.put(&url),
                    "PATCH" => self.agent.patch(&url),
                    other => panic!("method {other} not supported by the test kit"),
                };
                if let Some(value) = authorization {
                    request = request.header("Authorization", value);
                }
                match body {
                    Some(body) => request.header("Content-Type", "application/json").send(body),
                    None => request.send_empty(),
                }
            }
        };
        let mut response = result?;
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let cache_control = header("cache-control");
        let content_type = header("content-type");
        let connection = header("connection");
        let reply = Reply {
            status: response.status().as_u16(),
            body: response.body_mut().read_to_string().unwrap_or_default(),
            cache_control,
            content_type,
            connection,
        };
        self.bodies.lock().expect("bodies lock").push((reply.status, path.to_owned(), reply.body.clone()));
        Ok(reply)
    }

    /// `(status, path, body)` of every reply so far.
    pub fn bodies(&self) -> Vec<(u16, String, String)> {
        self.bodies.lock().expect("bodies lock").clone()
    }

    /// `requests` calls of `call` from each of `threads` threads at once, on their own
    /// connections, so that every worker of the server answers some; every reply, in no order.
    pub fn concurrently(&self, threads: usize, requests: usize, call: impl Fn(&Serve) -> Reply + Sync) -> Vec<Reply> {
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                (0..threads).map(|_| scope.spawn(|| (0..requests).map(|_| call(self)).collect::<Vec<_>>())).collect();
            handles.into_iter().flat_map(|handle| handle.join().unwrap()).collect()
        })
    }

    pub fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request("GET", path, bearer, None)
    }

    pub fn post(&self, path: &str, bearer: Option<&str>, body: Option<&str>) -> Reply {
        self.request("POST", path, bearer, body)
    }

    pub fn delete(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.request("DELETE", path, bearer, None)
    }

    /// Issues a workspace token through the API, with the server's admin token.
    pub fn issue(&self, workspace: &str) -> String {
        let reply = self.post(&format!("/admin/workspaces/{workspace}/tokens"), Some(self.admin()), None);
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.json()["token"].as_str().unwrap().to_owned()
    }

    /// Polls `GET /admin/plugins` (with the server's admin token) until `done` holds for its
    /// answer; panics after 30 s saying what never happened.
    pub fn wait_plugins(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let json = self.get("/admin/plugins", Some(self.admin())).json();
            if done(&json) {
                return json;
            }
            assert!(Instant::now() < deadline, "plugins never {what}: {json}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn admin(&self) -> &str {
        self.admin_token().expect("the server was started with an admin token")
    }
}
