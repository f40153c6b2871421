use super::{Context, GpuError, Result, Slice};

/// A WGSL source file from `shaders/`, named for the pipeline cache and error messages.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub source: &'static str,
}

/// One kernel launch, prepared once and encoded as often as needed: pipeline, bindings and
/// workgroup counts. Building these ahead keeps allocation out of training step loops.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: &'static str,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub workgroups: [u32; 3],
}

impl Context {
    /// The compute pipeline for `shader`'s `entry`, compiled once and cached (the WGSL file
    /// is parsed once for all its entry points). Compilation errors come back as
    /// [`GpuError::Shader`] instead of a panic.
    pub async fn pipeline(
        &self,
        shader: &Shader,
        entry: &'static str,
    ) -> Result<wgpu::ComputePipeline> {
        if let Some(p) = self.pipelines.lock().unwrap().get(&(shader.name, entry)) {
            return Ok(p.clone());
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let cached = self.modules.lock().unwrap().get(shader.name).cloned();
        let module = cached.unwrap_or_else(|| {
            self.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.source.into()),
                })
        });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        if let Some(err) = scope.pop().await {
            return Err(GpuError::Shader {
                shader: shader.name,
                entry,
                message: err.to_string(),
            });
        }
        self.modules.lock().unwrap().insert(shader.name, module);
        self.pipelines
            .lock()
            .unwrap()
            .insert((shader.name, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// Binds `(binding, buffer or slice)` pairs of group 0 for `pipeline` (layouts are
    /// derived from the shader, so each entry point binds exactly what it uses).
    pub fn bind<'a, B: Into<Slice<'a>> + Copy>(
        &self,
        pipeline: &wgpu::ComputePipeline,
        buffers: &[(u32, B)],
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|&(binding, buffer)| wgpu::BindGroupEntry {
                binding,
                resource: buffer.into().binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    }

    /// Records the dispatches, in order, into one compute pass of `encoder`. Each dispatch
    /// sees the writes of the ones before it.
    pub fn encode(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        dispatches: &[&Dispatch],
        timestamps: Option<wgpu::ComputePassTimestampWrites>,
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("varlab"),
            timestamp_writes: timestamps,
        });
        for d in dispatches {
            let [x, y, z] = d.workgroups;
            if x == 0 || y == 0 || z == 0 {
                continue;
            }
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(x, y, z);
        }
    }

    /// Encodes the dispatches into one command buffer and submits it: one submit per call.
    pub fn submit(&self, dispatches: &[&Dispatch]) -> Result<()> {
        self.check_alive()?;
        let mut encoder = self.device.create_command_encoder(&Default::default());
        self.encode(&mut encoder, dispatches, None);
        self.queue.submit([encoder.finish()]);
        Ok(())
    }

    /// A set of `count` timestamp queries and the buffer they resolve into (8 bytes each).
    fn timestamp_queries(&self, count: u32) -> (wgpu::QuerySet, wgpu::Buffer) {
        let queries = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: 8 * count as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        (queries, resolved)
    }

    /// Runs the dispatches `reps` times and returns the GPU time of the fastest run in
    /// seconds, from timestamp queries; `None` where the adapter has no timestamps.
    pub async fn time(&self, dispatches: &[&Dispatch], reps: u32) -> Result<Option<f64>> {
        if !self.report.timestamps {
            return Ok(None);
        }
        let reps = reps.max(1);
        let (queries, resolved) = self.timestamp_queries(2 * reps);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        for r in 0..reps {
            let writes = wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * r),
                end_of_pass_write_index: Some(2 * r + 1),
            };
            self.encode(&mut encoder, dispatches, Some(writes));
        }
        encoder.resolve_query_set(&queries, 0..2 * reps, &resolved, 0);
        self.queue.submit([encoder.finish()]);
        let ticks: Vec<u64> = self.read(&resolved).await?;
        let period_ns = self.queue.get_timestamp_period() as f64;
        let best = ticks
            .chunks_exact(2)
            .map(|t| t[1].saturating_sub(t[0]))
            .min()
            .unwrap_or(0);
        Ok(Some(best as f64 * period_ns * 1e-9))
    }

    /// GPU seconds of each dispatch alone, best of `reps`: every dispatch gets its own compute
    /// pass with timestamps at both ends, so nothing overlaps (their sum exceeds the time of
    /// the same list in one pass). Empty dispatches read 0. `None` without timestamps.
    pub async fn profile(&self, dispatches: &[&Dispatch], reps: u32) -> Result<Option<Vec<f64>>> {
        if !self.report.timestamps {
            return Ok(None);
        }
        // A query set holds at most 4096 queries: two per dispatch, so chunks of 2048.
        const CHUNK: usize = 2048;
        let period_ns = self.queue.get_timestamp_period() as f64;
        let mut best = vec![f64::INFINITY; dispatches.len()];
        for _ in 0..reps.max(1) {
            for (c, chunk) in dispatches.chunks(CHUNK).enumerate() {
                let count = 2 * chunk.len() as u32;
                let (queries, resolved) = self.timestamp_queries(count);
                let mut encoder = self.device.create_command_encoder(&Default::default());
                for (i, d) in chunk.iter().enumerate() {
                    let writes = wgpu::ComputePassTimestampWrites {
                        query_set: &queries,
                        beginning_of_pass_write_index: Some(2 * i as u32),
                        end_of_pass_write_index: Some(2 * i as u32 + 1),
                    };
                    self.encode(&mut encoder, &[d], Some(writes));
                }
                encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
                self.queue.submit([encoder.finish()]);
                let ticks: Vec<u64> = self.read(&resolved).await?;
                for (i, t) in ticks.chunks_exact(2).enumerate() {
                    let secs = t[1].saturating_sub(t[0]) as f64 * period_ns * 1e-9;
                    let slot = &mut best[c * CHUNK + i];
                    *slot = slot.min(secs);
                }
            }
        }
        Ok(Some(best))
    }
}
