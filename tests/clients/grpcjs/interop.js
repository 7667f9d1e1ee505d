// An independent gRPC client: @grpc/grpc-js with @grpc/proto-loader reading our .proto files as a
// third party would (no generated code of ours), driving a running icae-encoder and icae-decoder.
//
//   node interop.js --encoder HOST:PORT --decoder HOST:PORT --protos DIR
//
// Checks, in order: health SERVING on both, Encoder.GetInfo, Compress (float32 and bfloat16
// slots, raw little-endian bytes of the announced shape), Decoder.GetInfo (it accepts the
// encoder's id), Generate from the bf16 slots, GenerateStream giving the same greedy ids,
// GenerateStream cancelled after its first chunk (CANCELLED), and a refusal's code
// (FAILED_PRECONDITION for slots of another encoder). Prints one line per check; exit 0 when all
// pass, 1 at the first failure.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const loader = require('@grpc/proto-loader');
const health = require('grpc-health-check');

function args() {
  const out = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i + 1 < argv.length; i += 2) out[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const key of ['encoder', 'decoder', 'protos']) {
    if (!out[key]) throw new Error(`missing --${key}`);
  }
  return out;
}

function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}

function unary(client, method, request, deadlineSeconds = 60) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + deadlineSeconds * 1000);
    client[method](request, {deadline}, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

// Reads a server stream to its end: {chunks, status} (status.code 0 = OK). `cancelAfter` chunks
// received, the call is cancelled.
function stream(client, method, request, cancelAfter = 0) {
  return new Promise((resolve) => {
    const call = client[method](request, {deadline: new Date(Date.now() + 60000)});
    const chunks = [];
    call.on('data', (chunk) => {
      chunks.push(chunk);
      if (cancelAfter > 0 && chunks.length === cancelAfter) call.cancel();
    });
    call.on('error', (error) => resolve({chunks, status: error}));
    call.on('status', (status) => {
      if (status.code === grpc.status.OK) resolve({chunks, status});
    });
  });
}

async function waitServing(address, service) {
  const Health = grpc.makeGenericClientConstructor(health.service, 'Health');
  const client = new Health(address, grpc.credentials.createInsecure());
  const end = Date.now() + 60000;
  for (;;) {
    try {
      const response = await unary(client, 'check', {service}, 5);
      if (response.status === 'SERVING' || response.status === 1) return client.close();
    } catch (error) {
      if (Date.now() > end) throw error;
    }
    if (Date.now() > end) throw new Error(`${address}: ${service} not SERVING within 60 s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function elements(tensor) {
  return tensor.shape.reduce((n, d) => n * Number(d), 1);
}

async function main() {
  const a = args();
  const definition = loader.loadSync(
      ['icae/v1/encoder.proto', 'icae/v1/decoder.proto'],
      {includeDirs: [a.protos], keepCase: true, longs: String, enums: String, defaults: true,
       oneofs: true});
  const v1 = grpc.loadPackageDefinition(definition).icae.v1;
  const passed = [];
  const ok = (what) => {
    passed.push(what);
    console.log(`ok ${passed.length} ${what}`);
  };

  await waitServing(a.encoder, 'icae.v1.Encoder');
  await waitServing(a.decoder, 'icae.v1.Decoder');
  ok('grpc.health.v1 Check: both services SERVING');

  const encoder = new v1.Encoder(a.encoder, grpc.credentials.createInsecure());
  const decoder = new v1.Decoder(a.decoder, grpc.credentials.createInsecure());
  const info = await unary(encoder, 'GetInfo', {});
  check(info.encoder_id && info.hidden_size > 0 && info.mem_size > 0, 'EncoderInfo fields');
  ok(`Encoder.GetInfo: ${info.base_model}, hidden ${info.hidden_size}, mem_size ${info.mem_size}`);

  const spans = [
    {id: 'a', text: 'The old mill stood by the river for two hundred years before the flood.'},
    {id: 'b', text: 'She wrote the letter twice, then burned both copies and walked to town.'},
  ];
  const f32 = await unary(encoder, 'Compress', {spans});
  check(f32.spans.length === 2, 'two spans back');
  for (const span of f32.spans) {
    const t = span.slots.slots;
    check(t.dtype === 'FLOAT32', 'float32 slots');
    check(t.shape.length === 2 && Number(t.shape[1]) === info.hidden_size, 'shape [n, hidden]');
    check(t.data.length === elements(t) * 4, 'data bytes = elements x 4');
    check(Number(t.shape[0]) === span.usage.slots, 'usage.slots = rows');
    const values = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.length));
    check(values.every(Number.isFinite), 'finite values');
  }
  ok(`Encoder.Compress float32: ${f32.spans.map((s) => s.slots.slots.shape.join('x')).join(', ')}`);
  const bf16 = await unary(encoder, 'Compress', {spans, slot_dtype: 'BFLOAT16'});
  for (const span of bf16.spans) {
    const t = span.slots.slots;
    check(t.dtype === 'BFLOAT16' && t.data.length === elements(t) * 2, 'bf16: elements x 2 bytes');
  }
  ok('Encoder.Compress bfloat16: 2 bytes per element');

  const dinfo = await unary(decoder, 'GetInfo', {});
  check(dinfo.accepted_encoder_id === info.encoder_id, 'decoder accepts this encoder');
  ok(`Decoder.GetInfo: accepts ${dinfo.accepted_encoder_id.slice(0, 16)}...`);

  const request = {context: [{slots: bf16.spans[0].slots}], template_name: 'ae',
                   max_new_tokens: 24};
  const unaryAnswer = await unary(decoder, 'Generate', request);
  check(unaryAnswer.token_ids.length > 0, 'tokens generated');
  check(['EOS', 'LENGTH'].includes(unaryAnswer.finish_reason), 'finish reason');
  ok(`Decoder.Generate from bf16 slots: ${unaryAnswer.token_ids.length} tokens, ` +
     `${unaryAnswer.finish_reason}: ${JSON.stringify(unaryAnswer.text.slice(0, 60))}`);

  const whole = await stream(decoder, 'GenerateStream', request);
  check(whole.status.code === grpc.status.OK, `stream OK (${whole.status.details})`);
  const ids = [].concat(...whole.chunks.map((c) => c.token_ids));
  check(JSON.stringify(ids) === JSON.stringify(unaryAnswer.token_ids), 'stream ids = unary ids');
  check(whole.chunks[whole.chunks.length - 1].finish_reason === unaryAnswer.finish_reason,
        'last chunk carries the finish reason');
  ok(`Decoder.GenerateStream: ${whole.chunks.length} chunks, the same ${ids.length} greedy ids`);

  const long = {context: [{slots: f32.spans[1].slots}], template_name: 'ae',
                max_new_tokens: 200, ignore_eos: true};
  const cut = await stream(decoder, 'GenerateStream', long, 1);
  check(cut.status.code === grpc.status.CANCELLED, `cancelled stream: code ${cut.status.code}`);
  ok(`Decoder.GenerateStream cancelled after its first chunk: CANCELLED`);

  const foreign = JSON.parse(JSON.stringify(request));
  foreign.context[0].slots = {...bf16.spans[0].slots, encoder_id: 'another-encoder'};
  try {
    await unary(decoder, 'Generate', foreign);
    check(false, 'slots of another encoder were accepted');
  } catch (error) {
    check(error.code === grpc.status.FAILED_PRECONDITION,
          `FAILED_PRECONDITION expected, got ${error.code}: ${error.details}`);
    check(error.details.includes('another-encoder'), 'the message names the foreign id');
  }
  ok('Decoder.Generate with another encoder\'s slots: FAILED_PRECONDITION naming it');

  encoder.close();
  decoder.close();
  console.log(`interop: ${passed.length} checks passed`);
}

main().catch((error) => {
  console.error(`interop FAILED: ${error.stack || error}`);
  process.exit(1);
});
