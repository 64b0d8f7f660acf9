//! What one reconcile sees: the request's objects, the settings and `now`; and the trigger
//! object with its owner Cluster once both are known. Shared by the reconcile steps, the two
//! providers and the propagation to the Cluster.

use crate::inputs::{Fields, Inputs};
use crate::settings::Settings;
use crate::time::Millis;

/// What one reconcile sees.
pub struct Ctx<'a> {
    /// The request's objects.
    pub inputs: &'a Inputs,
    /// The effective settings.
    pub settings: &'a Settings,
    /// The request's `now`.
    pub now: Millis,
}

/// The trigger object and its owner Cluster, once both are known.
#[derive(Clone, Copy)]
pub struct Subject<'a> {
    /// The trigger object.
    pub me: Fields<'a>,
    /// Its owner Cluster.
    pub cluster: Fields<'a>,
}
