//! GET and LIST.

use super::*;

impl State {
    /// GET of one object, served form.
    pub(crate) fn get(&self, kind: &ResourceKind, ns: &str, name: &str) -> Result<Value, ApiError> {
        let stored = self.stored(kind, ns, name)?;
        Ok(to_served(kind, &stored))
    }

    /// A list (`<Kind>List`), served form.
    pub(crate) fn list(
        &self,
        kind: &ResourceKind,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<Value, ApiError> {
        let current = self.store.current_rv();
        let mut snapshot_rv = current;
        let mut after: Option<ObjectKey> = None;
        if let Some(token) = opts.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let token: ContinueToken = crate::util::hex_decode(token)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if token.rv < self.store.floor() {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list \
                     result. You can start a new list without the continue parameter, or use \
                     the continue token in this response to retrieve the remainder of the \
                     results. Continuing with the provided token results in an inconsistent \
                     list - objects that were created, modified, or deleted between the time \
                     the first chunk was returned and now may show up in the list.",
                ));
            }
            snapshot_rv = token.rv;
            after = Some((token.ns, token.name));
        } else if let Some(rv) = opts.resource_version.as_deref().filter(|rv| !rv.is_empty()) {
            let requested: u64 = rv
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?;
            if requested > current {
                let mut err = ApiError::new(
                    504,
                    Reason::Timeout,
                    format!("Too large resource version: {requested}, current: {current}"),
                );
                err = err.with_retry_after(1);
                return Err(err);
            }
            if opts.resource_version_match.as_deref() == Some("Exact") && requested != current {
                return Err(ApiError::expired(format!(
                    "too old resource version: {requested} ({current}): the in-process server \
                     only serves exact lists at the current resourceVersion"
                )));
            }
        }
        let limit = opts.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut last_key: Option<ObjectKey> = None;
        let mut remaining = 0usize;
        for (key, obj) in self.store.list(&kind.storage, ns, after.as_ref()) {
            let served = to_served(kind, obj);
            if !opts.selectors.matches(&served) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            last_key = Some(key.clone());
            items.push(served);
        }
        let mut metadata = json!({"resourceVersion": snapshot_rv.to_string()});
        if remaining > 0
            && let Some((ns, name)) = last_key
        {
            let token = ContinueToken {
                rv: snapshot_rv,
                ns,
                name,
            };
            let bytes = serde_json::to_vec(&token).unwrap_or_default();
            metadata["continue"] = json!(crate::util::hex_encode(&bytes));
            metadata["remainingItemCount"] = json!(remaining);
        }
        Ok(json!({
            "kind": format!("{}List", kind.kind),
            "apiVersion": kind.api_version(),
            "metadata": metadata,
            "items": items,
        }))
    }
}
