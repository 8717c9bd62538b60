/**
 * `deno task inspect`: shows one sample exactly as the network receives it (crop 2D, normalised
 * depth, augmented 3D, camera, bbx), and optionally writes the input crop with the skeleton drawn.
 * @module
 */

import { int, type OptionTable, optionTable, parseCommandLine, runTask, str, UsageError } from "../io/cli.ts";
import { drawSkeleton, normToPixels, upscale } from "../io/draw.ts";
import { DataError } from "../io/errors.ts";
import { encodePng } from "../io/images.ts";
import { actionOf, readRangeTable } from "../io/index_ranges.ts";
import { JOINT_LABELS, NUM_JOINTS } from "../io/joints.ts";
import { indexRangeDir } from "../io/manifest.ts";
import { type ProcessedSample, processSample } from "../stages/sample.ts";
import { planarToRgb } from "../stages/warp.ts";

/** Options of `deno task inspect`. */
export const OPTIONS: OptionTable = optionTable({
  values: "data id seed input-size out",
  flags: "augment legacy rgb json",
});

/** The text of `deno task inspect --help`. */
export const HELP = `Usage: deno task inspect --data DIR --id N [options]

Shows sample N of the dataset at DIR as the network sees it: the 2D label in the input crop,
the normalised root-relative depth, the ground-truth and back-projected (augmented) 3D, the
camera, the bbx and the crop -> raw-frame map.

Options:
  --data DIR         dataset root (per-sample folders, images/, index_range/)       [required]
  --id N             sample id                                                      [required]
  --augment          apply a random training augmentation (default: test mode, none)
  --seed S           seed of that augmentation (the pipeline's draw for stream position 0)  [0]
  --input-size S     network input side                                            [256]
  --legacy           the seed's quirks: its half-pixel crop geometry, a flip that keeps the
                     depths unswapped, back-projection treating the 256 crop as the bbx
  --rgb              R,G,B plane order instead of the seed's B,G,R
  --json             print JSON instead of a table
  --out FILE.png     write the input crop with joints and bones drawn
  -h, --help         this text

Conventions: norm = continuous crop coordinate / 256 (legacy: pixel index / 256); depth =
(Z - Z_root + 1005.185902) / 1985.045802; 3D in camera-frame mm.`;

function fmt(v: number, digits = 4): string {
  return v.toFixed(digits).padStart(10);
}

function report(s: ProcessedSample, size: number, action: string): string {
  const p = s.params;
  const lines = [
    `sample ${s.id}  action ${action}  input ${size}x${size}`,
    `augmentation: scale ${p.scale.toFixed(4)}  rotate ${p.rotateDeg.toFixed(2)} deg  flip ${p.flip}`,
    `camera: fx ${s.camera[0].toFixed(3)} fy ${s.camera[1].toFixed(3)} cx ${s.camera[2].toFixed(3)} cy ${
      s.camera[3].toFixed(3)
    }`,
    `bbx: ${Array.from(s.bbx).join(" ")}`,
    `cropToBbx: [${Array.from(s.cropToBbx, (v) => v.toFixed(4)).join(", ")}]`,
    "",
    `${"joint".padEnd(11)}${"u_norm".padStart(10)}${"v_norm".padStart(10)}${"u_px".padStart(10)}${
      "v_px".padStart(10)
    }${"depth".padStart(10)}${"gt_X".padStart(10)}${"gt_Y".padStart(10)}${"gt_Z".padStart(10)}${
      "aug_X".padStart(10)
    }${"aug_Y".padStart(10)}${"aug_Z".padStart(10)}`,
  ];
  for (let j = 0; j < NUM_JOINTS; j++) {
    const u = s.joints2d[2 * j], v = s.joints2d[2 * j + 1];
    lines.push(
      JOINT_LABELS[j].padEnd(11) + fmt(u) + fmt(v) + fmt(u * size, 2) + fmt(v * size, 2) + fmt(s.depth[j]) +
        fmt(s.gt3d[3 * j], 1) + fmt(s.gt3d[3 * j + 1], 1) + fmt(s.gt3d[3 * j + 2], 1) +
        fmt(s.aug3d[3 * j], 1) + fmt(s.aug3d[3 * j + 1], 1) + fmt(s.aug3d[3 * j + 2], 1),
    );
  }
  return lines.join("\n");
}

async function main(): Promise<number> {
  const values = parseCommandLine("inspect", Deno.args, OPTIONS);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const id = int(values, "id", 0), root = str(values, "data");
  if (root === undefined || id === undefined) throw new UsageError("--data and --id are required");
  const seed = int(values, "seed", 0) ?? 0, size = int(values, "input-size", 8) ?? 256;
  const legacy = values.legacy === true, augment = values.augment === true, out = str(values, "out");
  const channelOrder = values.rgb ? "rgb" : "bgr";
  const s = await processSample(root, id, {
    inputSize: size,
    augment,
    seed,
    seq: 0,
    legacy,
    channelOrder,
  });
  let action = "unknown";
  try {
    action = actionOf(await readRangeTable(await indexRangeDir(root)), id)?.action ?? "unknown";
  } catch (e) {
    if (!(e instanceof DataError)) throw e;
  }

  if (values.json) {
    console.log(JSON.stringify(
      {
        id,
        action,
        inputSize: size,
        params: s.params,
        joints2d: Array.from(s.joints2d),
        depth: Array.from(s.depth),
        gt3d: Array.from(s.gt3d),
        aug3d: Array.from(s.aug3d),
        camera: Array.from(s.camera),
        bbx: Array.from(s.bbx),
        cropToBbx: Array.from(s.cropToBbx),
      },
      null,
      1,
    ));
  } else {
    console.log(report(s, size, action));
  }

  if (out) {
    const factor = Math.max(1, Math.floor(256 / size));
    const canvas = upscale(
      { width: size, height: size, rgb: planarToRgb(s.image, size, { channelOrder }) },
      factor,
    );
    const px = normToPixels(s.joints2d, canvas.width, { legacy });
    drawSkeleton(canvas, px, {
      radius: Math.max(2, canvas.width / 96),
      thickness: Math.max(1.5, canvas.width / 160),
    });
    await Deno.writeFile(out, await encodePng(canvas.rgb, canvas.width, canvas.height));
    if (!values.json) console.log(`\nwrote ${out} (${canvas.width}x${canvas.height})`);
  }
  return 0;
}

if (import.meta.main) await runTask("inspect", main);
