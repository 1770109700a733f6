//! Spin's key-value store and variables for the component, from host
//! bindings generated from `wit/` (the pinned `fermyon:spin@2.0.0`
//! interfaces): each POP's store is its cache, its variables its settings.

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::RequestState;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "meridian:edge-host/spin-imports",
        imports: { default: async },
        with: {
            "fermyon:spin/key-value.store": super::StoreHandle,
        },
    });
}

use bindings::fermyon::spin::{key_value, variables};

/// An open key-value store: the label it was opened with.
pub struct StoreHandle {
    _label: String,
}

/// The one store label a component may open (`key_value_stores =
/// ["default"]` in spin.toml).
const DEFAULT_STORE: &str = "default";

pub(crate) fn add_to_linker(linker: &mut Linker<RequestState>) -> wasmtime::Result<()> {
    bindings::SpinImports::add_to_linker::<RequestState, HasSelf<RequestState>>(linker, |s| s)
}

impl variables::Host for RequestState {
    async fn get(&mut self, name: String) -> Result<String, variables::Error> {
        self.pop
            .variables
            .get(&name)
            .cloned()
            .ok_or(variables::Error::Undefined(name))
    }
}

impl key_value::Host for RequestState {}

impl key_value::HostStore for RequestState {
    async fn open(&mut self, label: String) -> Result<Resource<StoreHandle>, key_value::Error> {
        if label != DEFAULT_STORE {
            return Err(key_value::Error::NoSuchStore);
        }
        self.table
            .push(StoreHandle { _label: label })
            .map_err(|_| key_value::Error::StoreTableFull)
    }

    async fn get(
        &mut self,
        _this: Resource<StoreHandle>,
        key: String,
    ) -> Result<Option<Vec<u8>>, key_value::Error> {
        Ok(self.pop.kv.get(&key))
    }

    async fn set(
        &mut self,
        _this: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), key_value::Error> {
        self.pop.kv.set(&key, &value);
        Ok(())
    }

    async fn delete(
        &mut self,
        _this: Resource<StoreHandle>,
        key: String,
    ) -> Result<(), key_value::Error> {
        self.pop.kv.delete(&key);
        Ok(())
    }

    async fn exists(
        &mut self,
        _this: Resource<StoreHandle>,
        key: String,
    ) -> Result<bool, key_value::Error> {
        Ok(self.pop.kv.contains(&key))
    }

    async fn get_keys(
        &mut self,
        _this: Resource<StoreHandle>,
    ) -> Result<Vec<String>, key_value::Error> {
        Ok(self.pop.kv.keys())
    }

    async fn drop(&mut self, this: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}
