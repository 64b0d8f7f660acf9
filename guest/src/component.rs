//! Exports this policy as a `capt:policy` component (the glue is `capt_policy::guest`).

use crate::contract::{Error, Metadata, Request, Response};

struct CaptStatus;

impl capt_policy::guest::Policy for CaptStatus {
    fn metadata() -> Metadata {
        crate::metadata()
    }

    fn reconcile(request: &Request) -> Result<Response, Error> {
        crate::reconcile(request)
    }
}

capt_policy::export_policy!(CaptStatus);
