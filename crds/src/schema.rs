//! Schema adjustments for the generated CRDs.

use schemars::Schema;

/// Removes a type's own description from its schema, so that the description of the field that
/// uses the type is what `kubectl explain` shows. Needed for enums used in `Option` fields: the
/// structural rewrite of `Option<Enum>` otherwise replaces the field's description with the enum's.
pub(crate) fn drop_description(schema: &mut Schema) {
    schema.remove("description");
}

/// Marks a `conditions` list as a map keyed by `type` (`x-kubernetes-list-type: map`,
/// `x-kubernetes-list-map-keys: [type]`). Server-side apply then tracks ownership per condition
/// instead of for the whole list, so the agent and the operator can each apply their own
/// conditions on one object without taking over the other's. `type` is a required field of
/// `Condition`, as list-map keys must be.
pub(crate) fn conditions_list_map(schema: &mut Schema) {
    schema.insert("x-kubernetes-list-type".into(), "map".into());
    schema.insert(
        "x-kubernetes-list-map-keys".into(),
        serde_json::json!(["type"]),
    );
}
