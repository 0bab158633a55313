//! One line out of abi_stable's layout report, naming the type that drifted and how: a field
//! added, removed or reordered, an enum's variants changed, a trait method's signature changed
//! (`InitArgs: size 96 → 104 bytes (field drifted_extra added)`). The full report stays in
//! [`OpenError::LayoutMismatch::report`](super::OpenError::LayoutMismatch) for debug logs.

use abi_stable::{
    abi_stability::abi_checking::{AbiInstability, AbiInstabilityError, AbiInstabilityErrors},
    type_layout::{TLData, TLFieldOrFunction, TLFunction, TypeLayout},
};

/// The line for the first mismatch of `errors`.
pub fn summarize(errors: &AbiInstabilityErrors) -> String {
    let Some(error) = errors.errors.iter().find(|e| !e.errs.is_empty()) else {
        return "root module: layouts differ".to_owned();
    };
    let path = path_of(error);
    // The innermost step is where the layouts parted: a type whose own shape changed says
    // what changed in it; a function, how its signature did.
    if let Some(step) = error.stack_trace.last() {
        match (&step.expected, &step.found) {
            (TLFieldOrFunction::Function(expected), TLFieldOrFunction::Function(found)) => {
                return format!("{path}: signature changed ({} → {})", signature(expected), signature(found));
            }
            (TLFieldOrFunction::Field(expected), TLFieldOrFunction::Field(found)) => {
                if let Some(change) = type_change(expected.layout(), found.layout()) {
                    return format!("{}: {change}", expected.layout().name());
                }
            }
            _ => {}
        }
    }
    let what = describe(&error.errs[0]);
    if path.is_empty() { format!("root module: {what}") } else { format!("{path}: {what}") }
}

/// Where the mismatch is, in names a reader knows (trait, method, field) without abi_stable's
/// plumbing (vtables, erased objects, `RResult` variants). A sabi_trait object (`<Trait>_TO`)
/// restarts the path at `Trait::`.
fn path_of(error: &AbiInstabilityError) -> String {
    let mut path: Vec<String> = Vec::new();
    let push = |segment: &str, path: &mut Vec<String>| {
        if !segment.is_empty() && !is_plumbing(segment) && path.last().is_none_or(|last| !last.ends_with(segment)) {
            path.push(segment.to_owned());
        }
    };
    for step in error.stack_trace.iter() {
        match &step.expected {
            TLFieldOrFunction::Field(field) => {
                if let Some(trait_name) = field.layout().name().strip_suffix("_TO") {
                    path.clear();
                    path.push(format!("{trait_name}:"));
                } else {
                    push(field.name(), &mut path);
                }
            }
            TLFieldOrFunction::Function(func) => push(func.name.as_str(), &mut path),
        }
    }
    path.join(".").replace(":.", "::")
}

fn is_plumbing(name: &str) -> bool {
    matches!(name, "obj" | "vtable" | "ptr" | "_marker" | "ok" | "err" | "value")
        || name.starts_with("field_")
        || name.starts_with("param_")
        || name.bytes().all(|b| b.is_ascii_digit() || b == b',')
        || name.starts_with("_sabi")
        || name.starts_with("__")
}

/// How a struct's fields or an enum's variants changed, with the size when that changed too.
/// `None` when the shape is the same (the mismatch is further in, e.g. a field's type).
fn type_change(expected: &TypeLayout, found: &TypeLayout) -> Option<String> {
    let size = (expected.size() != found.size()).then(|| format!("size {} → {} bytes", expected.size(), found.size()));
    let shape = match (expected.data(), found.data()) {
        (TLData::Struct { fields: expected }, TLData::Struct { fields: found }) => {
            let names = |fields: abi_stable::type_layout::TLFields| fields.iter().map(|f| f.name()).collect::<Vec<_>>();
            list_change("field", &names(expected), &names(found))
        }
        (TLData::Enum(expected), TLData::Enum(found)) => {
            let expected: Vec<&str> = expected.variant_names_iter().collect();
            let found: Vec<&str> = found.variant_names_iter().collect();
            (expected != found).then(|| format!("variants changed ({} → {})", expected.join(", "), found.join(", ")))
        }
        _ => None,
    };
    match (size, shape) {
        (Some(size), Some(shape)) => Some(format!("{size} ({shape})")),
        (size, shape) => shape.or(size),
    }
}

/// `field x added`, `fields a, b removed`, `fields reordered (a, b → b, a)`.
fn list_change(what: &str, expected: &[&str], found: &[&str]) -> Option<String> {
    if expected == found {
        return None;
    }
    let added: Vec<&str> = found.iter().copied().filter(|name| !expected.contains(name)).collect();
    let removed: Vec<&str> = expected.iter().copied().filter(|name| !found.contains(name)).collect();
    if added.is_empty() && removed.is_empty() {
        return Some(format!("{what}s reordered ({} → {})", expected.join(", "), found.join(", ")));
    }
    let named = |names: &[&str], how: &str| {
        let plural = if names.len() == 1 { "" } else { "s" };
        format!("{what}{plural} {} {how}", names.join(", "))
    };
    let mut parts = Vec::new();
    if !removed.is_empty() {
        parts.push(named(&removed, "removed"));
    }
    if !added.is_empty() {
        parts.push(named(&added, "added"));
    }
    Some(parts.join(", "))
}

/// A trait method's signature as the vendor wrote it: `fn(&self, u32) -> RResult<Token, RString>`.
fn signature(function: &TLFunction) -> String {
    let params: Vec<String> = function
        .param_type_layouts
        .iter()
        .enumerate()
        .map(|(i, layout)| (i, layout()))
        .map(|(i, layout)| match (i, layout.name()) {
            (0, "RRef") => "&self".to_owned(),
            (0, "RMut") => "&mut self".to_owned(),
            _ => type_name(layout),
        })
        .collect();
    let returns =
        function.return_type_layout().map(|layout| format!(" -> {}", type_name(layout()))).unwrap_or_default();
    format!("fn({}){returns}", params.join(", "))
}

/// A type as written: abi_stable's own names leave out the parameters of its generic enums
/// (`RResult`), which are what a signature change is usually about.
fn type_name(layout: &TypeLayout) -> String {
    match (layout.name(), layout.data()) {
        (name @ ("RResult" | "ROption"), TLData::Enum(variants)) => {
            let params: Vec<&str> = variants.fields.iter().map(|field| field.layout().name()).collect();
            format!("{name}<{}>", params.join(", "))
        }
        _ => layout.full_type().to_string(),
    }
}

fn describe(err: &AbiInstability) -> String {
    use AbiInstability as A;
    match err {
        A::Name(v) => format!("expected {}, found {}", v.expected, v.found),
        A::MismatchedPrimitive(v) => format!("expected {:?}, found {:?}", v.expected, v.found),
        A::Package(v) => format!("type from package {}, found package {}", v.expected, v.found),
        A::PackageVersion(v) => format!("expected package version {}, found {}", v.expected, v.found),
        A::Size(v) => format!("expected size {} bytes, found {}", v.expected, v.found),
        A::Alignment(v) => format!("expected alignment {}, found {}", v.expected, v.found),
        A::FieldCountMismatch(v) => format!("expected {} fields, found {}", v.expected, v.found),
        A::UnexpectedField(v) => {
            format!("expected field `{}`, found `{}`", v.expected.name(), v.found.name())
        }
        A::TooManyVariants(v) => format!("expected {} variants, found {}", v.expected, v.found),
        A::MismatchedPrefixSize(v) => format!("expected a prefix of {} fields, found {}", v.expected, v.found),
        other => {
            let text = format!("{other:?}");
            text.chars().take(160).collect()
        }
    }
}
