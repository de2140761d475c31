//! `--output`: besides the store, an OCI or docker archive of the image, or
//! the target stage's files in a folder.

use crate::build::Builder;
use crate::error::{Error, IoContext, Result};
use crate::progress::Step;
use crate::request::Output;
use berth_store::archive::{save, MediaTypes, SaveItem};
use berth_store::StoredImage;

pub(crate) fn write_output(
    b: &Builder,
    image: &StoredImage,
    o: &Output,
    step: &Step,
) -> Result<()> {
    match o {
        Output::Image => Ok(()),
        Output::Oci(dest) | Output::Docker(dest) => {
            let types = if matches!(o, Output::Oci(_)) {
                MediaTypes::Oci
            } else {
                MediaTypes::Docker
            };
            let tmp = dest.with_extension("berth-partial");
            let mut f =
                std::fs::File::create(&tmp).ctx(|| format!("cannot create {}", tmp.display()))?;
            let items = [SaveItem {
                image: image.clone(),
                tags: b.req.tags.clone(),
            }];
            let written = save(&b.store, &items, types, &mut f);
            if let Err(e) = written {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::Store(e));
            }
            std::fs::rename(&tmp, dest).ctx(|| format!("cannot write {}", dest.display()))?;
            step.note(&format!("exporting to {} done", dest.display()));
            Ok(())
        }
        Output::Local(dest) => {
            std::fs::create_dir_all(dest).ctx(|| format!("cannot create {}", dest.display()))?;
            let layers = berth_store::snapshot::image_layers(image)?;
            for (layer, _) in layers {
                let blob = b.store.blobs().open(&layer.digest, Some(layer.size))?;
                let mut plain = berth_store::layer::decompressed(blob)
                    .ctx(|| format!("cannot read layer {}", layer.digest))?;
                berth_store::layer::extract(
                    &mut plain,
                    dest,
                    &berth_store::layer::ExtractOptions::default(),
                )?;
            }
            step.note(&format!("copying files to {} done", dest.display()));
            Ok(())
        }
    }
}
